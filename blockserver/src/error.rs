//! The blockserver's errors at its boundaries: what a data request can fail with
//! ([`BlockError`]) and what a reconstruction task can fail with ([`TaskError`]). The one map
//! to `tonic::Status` is `service::status`.

use std::time::Duration;

use raftfs_codec::CodecError;
use raftfs_core::reconstruction::InvalidTask;

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
    /// The caller may not make this call (DESIGN §9).
    #[error("permission denied: {0}")]
    Denied(#[from] raftfs_core::identity::Denied),
    /// The call's block access token does not cover it (DESIGN §9).
    #[error("{0}")]
    Token(#[from] raftfs_core::block_token::TokenError),
    /// The copy here is stamped older than the generation the call's token names: written
    /// before a lease recovery settled its group (a stale writer's, or one the recovery never
    /// reached). Never served: the reader takes another copy.
    #[error("block {block} is at generation {stamped}; the group is at {wanted}")]
    Stale {
        block: crate::store::BlockId,
        stamped: crate::store::Generation,
        wanted: crate::store::Generation,
    },
    /// The write stream was ended by lease recovery: its first `length` bytes were
    /// finalized, for the recovery to measure; the writer's block is not what it sent.
    #[error("write of {block} ended by lease recovery after {length} bytes")]
    Recovered {
        block: crate::store::BlockId,
        length: u64,
    },
    /// Not now: try again later (lease recovery found a write stream that would not end).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or a lost worker thread, never the peer's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<tokio::task::JoinError> for BlockError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("worker thread: {e}"))
    }
}

/// Why a reconstruction task failed here, or a rack's part of a lost cell could not be
/// computed for another server (`BlockData.Partial`). A task's error goes back to the active
/// as its outcome (which reschedules the block); nothing of the new block is left visible.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The task or the partial request cannot be run as sent: refused before anything is
    /// read or allocated.
    #[error("bad task: {0}")]
    BadTask(#[from] InvalidTask),
    /// A source (or the server combining its rack's cells) refused or failed the request.
    #[error("{addr}: {}", .status.message())]
    Source {
        addr: String,
        #[source]
        status: tonic::Status,
    },
    /// A source's address is not one a channel can be opened to.
    #[error("{addr}: {error}")]
    Address { addr: String, error: String },
    /// A source's bytes did not match the checksums stored with them.
    #[error("{addr}: {error}")]
    Checksum {
        addr: String,
        error: raftfs_core::checksum::ChunkError,
    },
    /// A source sent another number of bytes than asked for.
    #[error("{addr}: {got} of {want} bytes")]
    Length { addr: String, got: u64, want: u64 },
    /// A source did not answer in time (DESIGN §7: a source read may take 30 s).
    #[error("{addr}: no answer within {after:?}")]
    Timeout { addr: String, after: Duration },
    /// The new block could not be created, written or finalized (no space, a failed volume,
    /// the block already here).
    #[error(transparent)]
    Store(#[from] BlockError),
    #[error("decoding: {0}")]
    Codec(#[from] CodecError),
    /// The layout says bytes remain but a stripe gave none: a bug, stopped rather than looped.
    #[error("no progress at byte {at} of {len}")]
    NoProgress { at: u64, len: u64 },
    /// A blocking thread of the task was lost (it panicked).
    #[error("worker thread: {0}")]
    Thread(#[from] tokio::task::JoinError),
    /// The server already runs as much reconstruction work as the actives allow (two
    /// nameservices' actives handed out in the same second, DESIGN §10): refused before
    /// anything is read or allocated; the active reschedules it.
    #[error("busy: {running} reconstruction tasks running, the limit is {limit}")]
    Busy { running: usize, limit: u32 },
}
