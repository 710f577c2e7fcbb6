//! The client's error type: namespace refusals with their typed kind, and failures to reach
//! an active metaserver within the failover deadline.

use std::time::Duration;

pub use raftfs_proto::ErrorKind;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The metaserver refused the operation (typed: `kind` says why); nothing changed.
    /// `state_id` is the state the refusal reflects (0 when it reflects none); through a
    /// router, `state_ids` names the nameservice that refused with its state (DESIGN §10).
    #[error("{message}")]
    Refused {
        kind: ErrorKind,
        message: String,
        state_id: u64,
        state_ids: std::collections::BTreeMap<String, u64>,
    },
    /// No active metaserver answered within the failover deadline.
    #[error("no active metaserver answered within {deadline:?}: {last}")]
    Unavailable { deadline: Duration, last: String },
    /// The client was set up wrongly (no addresses, a bad address).
    #[error("client configuration: {0}")]
    Config(String),
    /// A status the client does not know how to handle.
    #[error("rpc failed: {0}")]
    Rpc(#[from] tonic::Status),
}

impl ClientError {
    /// The refusal's kind, if this is a refusal.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Refused { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Whether the operation was refused with `kind`.
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind() == Some(kind)
    }

    /// Whether the same call may succeed later unchanged: a refusal that reflects a passing
    /// state (`ReadOnly`: a `balance` window; no active or observer caught up within the
    /// deadline), never one of the request or the namespace (`NotFound`, permissions...).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self.kind(),
            Some(
                ErrorKind::ReadOnly
                    | ErrorKind::Unavailable
                    | ErrorKind::NotActive
                    | ErrorKind::ObserverBehind
            )
        )
    }
}
