//! raftfs metaserver: the namespace as a deterministic state machine in RocksDB, journaled
//! through Raft (`openraft`).
//!
//! - [`namespace`]: the pure namespace logic of `raftfs-core` (paths, inodes, every
//!   operation), re-exported: this crate runs it over RocksDB.
//! - [`journal`]: Raft types, the RocksDB log store and state machine, checkpoint snapshots,
//!   the transport between metaservers, and the proposer that batches mutations per entry.
//! - [`registry`], [`placement`], [`redundancy`], [`lease_recovery`]: the blockservers and
//!   their blocks as reported (soft state), where new block groups go, how healthy groups
//!   are, and closing the files of dead writers.
//! - [`service`]: gRPC handlers (client namespace, admin, raft) and the one error-to-status map.
//! - [`config`], [`metrics`], [`server`]: configuration, Prometheus metrics, and wiring it all
//!   into a running server ([`server::serve`]), which the `metaserver` binary and
//!   `metactl serve-meta` both call.

pub mod block_tokens;
pub mod config;
pub mod error;
pub mod generate;
pub mod journal;
pub mod lease_recovery;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod observer;
pub mod placement;
pub mod reclaim;
pub mod redundancy;
pub mod registry;
pub mod server;
pub mod service;
pub mod ui;

pub use raftfs_core::namespace;

pub use config::{Config, ServeArgs};
pub use error::MetaError;
