//! The blockserver's error at its boundary: what a data request can fail with. The one map to
//! `tonic::Status` is `service::status`.

use crate::store::StoreError;

/// Why a block operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every volume has failed (or none could be opened): this server stores nothing more.
    #[error("no working volume (all {0} failed)")]
    NoVolume(u32),
    /// A request that cannot be served as sent (no block named, index out of range, ...).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// A bug or a lost worker thread, never the peer's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<tokio::task::JoinError> for BlockError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("worker thread: {e}"))
    }
}
