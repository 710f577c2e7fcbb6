//! Namespace errors. These are *results*: every replica computes the same one for the same
//! entry, so they are recorded with the entry (and in the retry cache), never a reason to stop.

use serde::{Deserialize, Serialize};

/// Why a namespace operation was refused. The operation changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum NsError {
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: already exists")]
    AlreadyExists(String),
    #[error("{0}: not a directory")]
    NotADirectory(String),
    #[error("{0}: is a directory")]
    IsADirectory(String),
    #[error("{0}: directory is not empty")]
    DirectoryNotEmpty(String),
    #[error("{0}: parent directory does not exist")]
    ParentNotFound(String),
    #[error("{path}: lease held by {holder}")]
    LeaseConflict { path: String, holder: String },
    #[error("cannot move {src} into its own subtree {dst}")]
    RenameIntoSubtree { src: String, dst: String },
    #[error("{0}: not allowed on the root directory")]
    RootNotAllowed(String),
    #[error("{0}: not under construction")]
    NotUnderConstruction(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{path}: no extended attribute {name}")]
    XattrNotFound { path: String, name: String },
    #[error("{path}: extended attribute {name} does not hold the expected value")]
    XattrMismatch { path: String, name: String },
    /// A call retried under a call id whose recorded result answers another operation
    /// (issue #16): refused, not answered from the retry cache, and not applied.
    #[error("call {call_id} of this client was another operation: {op} is not applied")]
    RetryMismatch { call_id: u64, op: String },
    /// The caller's permissions do not allow the operation (DESIGN §9).
    #[error("permission denied: user {user} may not {what} {path}")]
    PermissionDenied {
        user: String,
        what: String,
        path: String,
    },
    /// A rule of snapshots refused the operation (DESIGN §13; HDFS's `SnapshotException`):
    /// a directory that is not snapshottable, one with snapshots removed or disallowed,
    /// nested snapshottable directories, a change inside a read-only snapshot or to an
    /// entry named `.snapshot`.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The path is frozen (DESIGN §13: a `balance` moving it to another nameservice is in
    /// its read-only window): nothing changed; the same call may succeed once the window
    /// ends, here or, after the mount's switch, at the nameservice the mount then names.
    #[error("{path}: read-only while {frozen} is frozen")]
    ReadOnly { path: String, frozen: String },
}

impl NsError {
    /// A stable, machine-readable name of the variant (used by tests and the model).
    pub fn kind(&self) -> &'static str {
        match self {
            NsError::InvalidPath { .. } => "InvalidPath",
            NsError::NotFound(_) => "NotFound",
            NsError::AlreadyExists(_) => "AlreadyExists",
            NsError::NotADirectory(_) => "NotADirectory",
            NsError::IsADirectory(_) => "IsADirectory",
            NsError::DirectoryNotEmpty(_) => "DirectoryNotEmpty",
            NsError::ParentNotFound(_) => "ParentNotFound",
            NsError::LeaseConflict { .. } => "LeaseConflict",
            NsError::RenameIntoSubtree { .. } => "RenameIntoSubtree",
            NsError::RootNotAllowed(_) => "RootNotAllowed",
            NsError::NotUnderConstruction(_) => "NotUnderConstruction",
            NsError::InvalidArgument(_) => "InvalidArgument",
            NsError::XattrNotFound { .. } => "XattrNotFound",
            NsError::XattrMismatch { .. } => "XattrMismatch",
            NsError::PermissionDenied { .. } => "PermissionDenied",
            NsError::RetryMismatch { .. } => "RetryMismatch",
            NsError::Snapshot(_) => "Snapshot",
            NsError::ReadOnly { .. } => "ReadOnly",
        }
    }
}

/// A failure of the storage under the namespace. Unlike [`NsError`] this is local to one
/// process (a disk error, corruption) and fatal to the state machine that meets it. The
/// engine's own error is carried as text: the namespace runs over any [`super::kv::KvRead`]
/// and names no engine.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("corrupt record in {cf}: {reason}")]
    Corrupt { cf: &'static str, reason: String },
    /// A stored record that does not decode: garbage, or a version newer than this binary
    /// knows ([`crate::format::FormatError::UnknownVersion`]).
    #[error("record in {cf}: {source}")]
    Format {
        cf: &'static str,
        source: crate::format::FormatError,
    },
    /// The cluster is at (or is finalizing an upgrade to) a format level this binary does not
    /// write (DESIGN §11): the member must run a newer binary.
    #[error(
        "the cluster's format level is (or is being finalized to) {level}; this binary ({binary}) writes levels up to {newest}: run a newer binary on this member"
    )]
    LevelUnsupported {
        level: crate::level::Level,
        newest: crate::level::Level,
        binary: String,
    },
}

/// What a namespace call can end in: a recorded refusal, or a local storage failure.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::policy::PolicyError> for NsError {
    fn from(e: crate::policy::PolicyError) -> Self {
        NsError::InvalidArgument(e.to_string())
    }
}
