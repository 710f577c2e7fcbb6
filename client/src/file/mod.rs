//! Files' bytes (DESIGN §6): the async [`FileWriter`] and [`FileReader`] over the
//! blockservers, for replicated and erasure-coded (striped) files.
//!
//! - [`block_io`]: streams to and reads from one internal block on one blockserver.
//! - [`writer`]: cuts cells, encodes stripes, writes the internal blocks of a group in
//!   parallel, allocates groups, completes the file.
//! - [`reader`]: reads only the cells a range needs, and decodes around internal blocks that
//!   are missing, corrupt or slow (a degraded read).
//! - [`lease`]: renews the lease of a client's open writers.
//! - [`checksum`]: a file's checksum comparable across layouts, from the stored chunk
//!   checksums.

pub mod block_io;
pub mod checksum;
pub mod lease;
pub mod reader;
pub mod writer;

use std::io;

pub use checksum::{FileChecksum, file_checksum};
pub use reader::FileReader;
pub use writer::FileWriter;

use crate::error::ClientError;
use raftfs_codec::CodecError;
use raftfs_core::id::GroupId;
use raftfs_core::policy::PolicyError;

/// Why a file's bytes could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A namespace call failed (the file does not exist, the lease is gone, ...).
    #[error(transparent)]
    Namespace(#[from] ClientError),
    /// Not enough internal blocks could be written: more servers failed than the policy
    /// tolerates. The file stays under construction; nothing is visible as complete.
    #[error("block group {group}: {failed} of {width} internal blocks failed ({why})")]
    TooManyFailures {
        group: GroupId,
        failed: usize,
        width: usize,
        why: String,
    },
    /// A blockserver is out of space.
    #[error("no space left on blockserver {addr}: {message}")]
    NoSpace { addr: String, message: String },
    /// Not enough internal blocks could be read to return these bytes.
    #[error("block group {group}: cannot read offset {offset}: {why}")]
    Unreadable {
        group: GroupId,
        offset: u64,
        why: String,
    },
    /// The file was replaced (overwritten) or deleted while it was being read.
    #[error("{path} was replaced or deleted while it was read")]
    Replaced { path: String },
    /// A policy name the client does not know, or past the caps.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The writer was used after a failure or after close.
    #[error("file writer is closed")]
    Closed,
}

impl From<FileError> for io::Error {
    fn from(e: FileError) -> Self {
        let kind = match &e {
            FileError::NoSpace { .. } => io::ErrorKind::StorageFull,
            FileError::Namespace(ClientError::Refused { kind, .. })
                if *kind == crate::ErrorKind::NoSpace =>
            {
                io::ErrorKind::StorageFull
            }
            FileError::Namespace(ClientError::Refused { kind, .. })
                if *kind == crate::ErrorKind::NotFound =>
            {
                io::ErrorKind::NotFound
            }
            FileError::Closed => io::ErrorKind::BrokenPipe,
            FileError::Policy(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
