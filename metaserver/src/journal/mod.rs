//! The journal: namespace mutations as Raft entries (`openraft` 0.9), a RocksDB log store, a
//! RocksDB state machine, checkpoint snapshots, the gRPC transport between metaservers, and
//! the proposer that packs concurrent client mutations into one entry.
//!
//! Why application-level batching: openraft 0.9 waits for each `append` to be flushed before
//! it issues the next, so one entry costs one leader fsync. Packing every mutation waiting at
//! that moment into one entry makes one fsync serve many clients (group commit), and keeps
//! the entry the unit of state ID, retry cache and determinism.

// openraft's storage traits fix `StorageError` (~224 bytes) as the error type of every store
// operation; boxing it in our helpers would only add conversions at each trait boundary.
#![allow(clippy::result_large_err)]

pub mod format;
pub mod log_store;
pub mod network;
pub mod proposer;
pub mod retry_cache;
pub mod rocks;
pub mod snapshot;
pub mod state_machine;

use std::fmt;

use openraft::BasicNode;

/// The node type carried in memberships: its advertised address.
pub type BasicNodeMeta = BasicNode;
use serde::{Deserialize, Serialize};

use crate::namespace::permission::Access;
use crate::namespace::{ApplyCtx, NsError, Op, OpOutput};

/// A member's id is the Raft node id.
pub use raftfs_core::id::{CallId, ClientId, MemberId};

/// One client mutation inside an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub client: ClientId,
    /// With `client`, the retry-cache key; 0 means "not cached" (internal operations).
    pub call_id: CallId,
    pub op: Op,
    /// Who the operation runs as, decided by the active from the authenticated caller: its
    /// permissions are checked in the apply (DESIGN §9). `None`: the active's own work.
    pub access: Option<Access>,
}

/// The application data of one Raft entry: mutations and the context the leader fixed.
/// Serialized as a record of its own, with its own version (`format`), wherever openraft
/// carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub ctx: ApplyCtx,
    pub proposals: Vec<Proposal>,
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batch of {} at {}",
            self.proposals.len(),
            self.ctx.now_ms
        )
    }
}

/// The result of each proposal of an entry, in order: recorded, identical on every replica.
pub type BatchResponse = Vec<Result<OpOutput, NsError>>;

openraft::declare_raft_types!(
    /// The openraft type configuration of the metaserver.
    pub TypeConfig:
        D = Batch,
        R = BatchResponse,
        NodeId = MemberId,
        Node = BasicNode,
        SnapshotData = snapshot::SnapshotFile,
);

/// The openraft instance.
pub type Raft = openraft::Raft<TypeConfig>;
