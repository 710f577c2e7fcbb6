//! Errors as a mounted file system reports them: one `errno` for each way raftfs refuses or
//! fails, from one exhaustive map, so that `cp`, `rm`, `mv` and shells say what they say on
//! a local disk (`mv` across nameservices gets `EXDEV` and copies instead).

use fuser::Errno;
use raftfs_client::{ClientError, ErrorKind, FileError};

/// Why a mount operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    File(#[from] FileError),
    /// A refusal the mount decides itself (a random write, a name that is not UTF-8, an
    /// inode the kernel no longer holds): the errno, and why.
    #[error("{why}")]
    Refused { errno: Errno, why: String },
    /// Writing the file failed for a reason that is not a `FileError`.
    #[error("writing the file: {0}")]
    Write(String),
}

impl FsError {
    /// A refusal of the mount's own.
    pub fn refused(errno: Errno, why: impl Into<String>) -> Self {
        FsError::Refused {
            errno,
            why: why.into(),
        }
    }

    /// An inode the mount does not know (forgotten, or unlinked behind the kernel's back).
    pub fn stale(ino: u64) -> Self {
        Self::refused(
            Errno::ENOENT,
            format!("inode {ino} is not known to the mount"),
        )
    }

    /// A failure of a `FileWriter` (through `AsyncWrite`'s `io::Error`): the file error it
    /// carries, mapped as any other.
    pub fn from_write(e: std::io::Error) -> Self {
        let text = e.to_string();
        match e.into_inner().map(|inner| inner.downcast::<FileError>()) {
            Some(Ok(file)) => FsError::File(*file),
            _ => FsError::Write(text),
        }
    }

    /// The errno this failure is reported with.
    pub fn errno(&self) -> Errno {
        match self {
            FsError::Client(e) => errno_of_client(e),
            FsError::File(e) => errno_of_file(e),
            FsError::Refused { errno, .. } => *errno,
            FsError::Write(_) => Errno::EIO,
        }
    }
}

/// Logs a failed operation: the cluster's or the machine's trouble as a warning, a refused
/// random write (a program that needs what raftfs does not do) as information, and what a
/// caller asked wrongly (a missing file, a permission) for debugging only.
pub fn log_failure(what: &str, e: &FsError) {
    let errno = e.errno();
    match errno {
        Errno::EIO | Errno::ETIMEDOUT | Errno::EAGAIN | Errno::ENOSPC | Errno::ESTALE => {
            tracing::warn!("{what}: {e} ({errno:?})");
        }
        Errno::EOPNOTSUPP => tracing::info!("{what}: {e}"),
        _ => tracing::debug!("{what}: {e} ({errno:?})"),
    }
}

/// The errno of a refusal of kind `kind`.
pub fn errno_of_kind(kind: ErrorKind) -> Errno {
    match kind {
        ErrorKind::NotFound | ErrorKind::ParentNotFound | ErrorKind::NotMounted => Errno::ENOENT,
        ErrorKind::AlreadyExists => Errno::EEXIST,
        ErrorKind::DirectoryNotEmpty => Errno::ENOTEMPTY,
        ErrorKind::NotADirectory => Errno::ENOTDIR,
        ErrorKind::IsADirectory => Errno::EISDIR,
        ErrorKind::PermissionDenied | ErrorKind::Unauthenticated => Errno::EACCES,
        // Another client holds the file's lease: it is being written.
        ErrorKind::LeaseConflict => Errno::EBUSY,
        // Snapshots are read-only; so is a subtree frozen for a move between nameservices.
        ErrorKind::Snapshot | ErrorKind::ReadOnly => Errno::EROFS,
        ErrorKind::InvalidPath
        | ErrorKind::InvalidArgument
        | ErrorKind::RetryMismatch
        | ErrorKind::NotUnderConstruction
        // POSIX: renaming a directory into its own subtree is EINVAL.
        | ErrorKind::RenameIntoSubtree => Errno::EINVAL,
        // POSIX: the root, and a mount point, cannot be renamed or removed.
        ErrorKind::RootNotAllowed | ErrorKind::MountPoint => Errno::EBUSY,
        ErrorKind::XattrNotFound => Errno::ENODATA,
        ErrorKind::XattrMismatch => Errno::EEXIST,
        ErrorKind::NoSpace => Errno::ENOSPC,
        ErrorKind::CrossNamespaceRename => Errno::EXDEV,
        ErrorKind::NotActive | ErrorKind::ObserverBehind | ErrorKind::Unavailable => {
            Errno::EAGAIN
        }
        ErrorKind::CorruptBlock
        | ErrorKind::BlockNotFound
        | ErrorKind::InvalidBlockToken
        | ErrorKind::StaleGeneration
        | ErrorKind::Unspecified
        | ErrorKind::UnknownNode
        | ErrorKind::Internal
        | ErrorKind::Storage
        | ErrorKind::WrongNameservice => Errno::EIO,
    }
}

fn errno_of_client(e: &ClientError) -> Errno {
    match e {
        ClientError::Refused { kind, .. } => errno_of_kind(*kind),
        // No active metaserver within the failover deadline.
        ClientError::Unavailable { .. } => Errno::ETIMEDOUT,
        ClientError::Config(_) | ClientError::Rpc(_) => Errno::EIO,
    }
}

fn errno_of_file(e: &FileError) -> Errno {
    match e {
        FileError::Namespace(e) => errno_of_client(e),
        FileError::NoSpace { .. } => Errno::ENOSPC,
        FileError::Replaced { .. } => Errno::ESTALE,
        FileError::Policy(_) => Errno::EINVAL,
        FileError::Closed => Errno::EBADF,
        FileError::TooManyFailures { .. } | FileError::Unreadable { .. } | FileError::Codec(_) => {
            Errno::EIO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(kind: ErrorKind) -> FsError {
        FsError::Client(ClientError::Refused {
            kind,
            message: String::new(),
            state_id: 0,
            state_ids: Default::default(),
        })
    }

    #[test]
    fn refusals_read_as_a_local_disk_would_say_them() {
        assert_eq!(refused(ErrorKind::NotFound).errno(), Errno::ENOENT);
        assert_eq!(
            refused(ErrorKind::DirectoryNotEmpty).errno(),
            Errno::ENOTEMPTY
        );
        assert_eq!(refused(ErrorKind::PermissionDenied).errno(), Errno::EACCES);
        assert_eq!(
            refused(ErrorKind::CrossNamespaceRename).errno(),
            Errno::EXDEV
        );
        let nested = FsError::File(FileError::Namespace(ClientError::Refused {
            kind: ErrorKind::AlreadyExists,
            message: String::new(),
            state_id: 0,
            state_ids: Default::default(),
        }));
        assert_eq!(nested.errno(), Errno::EEXIST);
    }

    #[test]
    fn a_writer_failure_keeps_its_file_error() {
        let io: std::io::Error = FileError::NoSpace {
            addr: "b1".into(),
            message: "full".into(),
        }
        .into();
        assert_eq!(FsError::from_write(io).errno(), Errno::ENOSPC);
        let other = std::io::Error::other("gone");
        assert_eq!(FsError::from_write(other).errno(), Errno::EIO);
    }
}
