//! The metaserver's error at its boundary. `service::status` maps every variant to a
//! `tonic::Status` with a machine-readable [`raftfs_proto::ErrorDetail`].

use raftfs_core::id::BlockServerId;

use crate::journal::MemberId;
use crate::journal::proposer::ProposeError;
use crate::namespace::{ApplyError, NsError, StoreError};

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The namespace refused the operation; `state_id` is the entry that recorded the refusal
    /// (0 for a read or for a request refused before it was journaled).
    #[error("{source}")]
    Namespace { source: NsError, state_id: u64 },
    /// This metaserver is not the active; where the active is, when known.
    #[error("this metaserver is not the active")]
    NotActive { leader: Option<(MemberId, String)> },
    /// An observer has not applied the state the client has already seen
    /// (`applied < wanted`) within the read wait: the client tries another member.
    #[error("observer is behind: applied {applied}, the client has seen {wanted}")]
    ObserverBehind { applied: u64, wanted: u64 },
    /// No node with this id is a member (or the node at an address is not the one named).
    #[error("unknown node {0}")]
    UnknownNode(MemberId),
    /// No blockserver with this id is registered (it re-registers when told so).
    #[error("unknown blockserver {0}")]
    UnknownBlockServer(BlockServerId),
    /// A request that cannot be carried out as asked (e.g. promoting a voter); nothing changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No placement for a new block group: too few live blockservers with room.
    #[error("no space: {0}")]
    NoSpace(#[from] crate::placement::PlacementError),
    /// Raft is not running or lost its quorum.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A local storage failure.
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    /// The caller may not make this call (DESIGN §9); nothing changed.
    #[error("permission denied: {0}")]
    Denied(#[from] raftfs_core::identity::Denied),
    /// A blockserver registered for another nameservice's pool (DESIGN §10); nothing changed.
    #[error("this member serves nameservice {ours}, not {theirs}")]
    WrongNameservice { ours: String, theirs: String },
    /// A bug or an unexpected state.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<crate::registry::RegistryError> for MetaError {
    fn from(e: crate::registry::RegistryError) -> Self {
        match e {
            crate::registry::RegistryError::UnknownNode(id) => MetaError::UnknownBlockServer(id),
            crate::registry::RegistryError::Invalid(why) => MetaError::InvalidArgument(why),
        }
    }
}

impl From<NsError> for MetaError {
    fn from(source: NsError) -> Self {
        MetaError::Namespace {
            source,
            state_id: 0,
        }
    }
}

impl From<ApplyError> for MetaError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Ns(source) => MetaError::Namespace {
                source,
                state_id: 0,
            },
            ApplyError::Store(s) => MetaError::Storage(s),
        }
    }
}

impl From<ProposeError> for MetaError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NotLeader { leader } => MetaError::NotActive { leader },
            ProposeError::Unavailable(why) => MetaError::Unavailable(why),
        }
    }
}
