//! Namespace mutations as they are journaled. Everything an operation needs that is not in
//! the replicated state (the time, the lease length) is fixed by the leader in the entry
//! ([`ApplyCtx`]), so that apply is a pure function of the state and the entry.

use serde::{Deserialize, Serialize};

use super::blocks::{self, BlockGroup};
use super::inode::{Inode, StoragePolicy};
use super::path::NsPath;
use super::throttle::ThrottleChange;
use crate::id::BlockServerId;

/// Fixed by the leader for a whole entry, carried in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyCtx {
    /// The leader's clock when it built the entry, ms since the epoch.
    pub now_ms: u64,
    /// How long a lease lasts after a create, append or renewal.
    pub lease_ms: u64,
}

/// What a compare-and-set of an extended attribute expects to find.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XattrExpect {
    /// Set unconditionally.
    Any,
    /// Set only if the attribute does not exist.
    Absent,
    /// Set only if the attribute holds exactly this value.
    Value(Vec<u8>),
}

/// One namespace mutation (DESIGN §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Mkdir {
        path: NsPath,
        parents: bool,
        permission: u16,
        owner: String,
        group: Option<String>,
    },
    Create {
        path: NsPath,
        overwrite: bool,
        create_parents: bool,
        permission: u16,
        owner: String,
        group: Option<String>,
        policy: Option<StoragePolicy>,
        holder: String,
        /// Bytes per internal block (the leader fills in its default when the client gave 0).
        block_size: u64,
    },
    Complete {
        path: NsPath,
        holder: String,
        length: u64,
    },
    Append {
        path: NsPath,
        holder: String,
    },
    Rename {
        src: NsPath,
        dst: NsPath,
        overwrite: bool,
    },
    Delete {
        path: NsPath,
        recursive: bool,
    },
    SetPermission {
        path: NsPath,
        permission: u16,
    },
    SetOwner {
        path: NsPath,
        owner: Option<String>,
        group: Option<String>,
    },
    SetTimes {
        path: NsPath,
        mtime_ms: Option<u64>,
        atime_ms: Option<u64>,
    },
    SetStoragePolicy {
        path: NsPath,
        policy: StoragePolicy,
    },
    RenewLease {
        holder: String,
    },
    /// Closes a file whose writer is gone. The leader measured, on the blockservers, how
    /// many bytes of the open last group every surviving internal block agrees on.
    RecoverLease {
        path: NsPath,
        /// The open group's recovered length, and which group was measured: the entry is
        /// refused if the file's open group is another one by the time it applies.
        last_group_length: Option<(u64, blocks::GroupId)>,
    },
    Symlink {
        path: NsPath,
        target: String,
        create_parents: bool,
        owner: String,
    },
    SetXattr {
        path: NsPath,
        name: String,
        value: Vec<u8>,
        expect: XattrExpect,
    },
    RemoveXattr {
        path: NsPath,
        name: String,
    },
    /// Appends `value` to an attribute (created when absent), in one step: concurrent appends
    /// never lose one another, as read-modify-write through `SetXattr` could.
    AppendXattr {
        path: NsPath,
        name: String,
        value: Vec<u8>,
    },
    /// Closes the open block group at `file_length` and allocates the next one on `targets`
    /// (blockserver ids the leader chose).
    AddBlock {
        path: NsPath,
        holder: String,
        file_length: u64,
        targets: Vec<BlockServerId>,
    },
    /// Changes the reconstruction byte budgets.
    SetThrottle(ThrottleChange),
}

impl Op {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Mkdir { .. } => "mkdir",
            Op::Create { .. } => "create",
            Op::Complete { .. } => "complete",
            Op::Append { .. } => "append",
            Op::Rename { .. } => "rename",
            Op::Delete { .. } => "delete",
            Op::SetPermission { .. } => "set_permission",
            Op::SetOwner { .. } => "set_owner",
            Op::SetTimes { .. } => "set_times",
            Op::SetStoragePolicy { .. } => "set_storage_policy",
            Op::RenewLease { .. } => "renew_lease",
            Op::RecoverLease { .. } => "recover_lease",
            Op::Symlink { .. } => "symlink",
            Op::SetXattr { .. } => "set_xattr",
            Op::RemoveXattr { .. } => "remove_xattr",
            Op::AppendXattr { .. } => "append_xattr",
            Op::AddBlock { .. } => "add_block",
            Op::SetThrottle(_) => "set_throttle",
        }
    }
}

/// What a successful mutation returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpOutput {
    /// The inode created or changed.
    Inode(Inode),
    /// Inodes removed by a delete.
    Removed(u64),
    /// Nothing to report (a lease renewal).
    Done,
    /// A new block group, and its file.
    Group(Inode, BlockGroup),
}

/// Aggregate sizes below a path (`hdfs dfs -count`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSummary {
    pub directories: u64,
    pub files: u64,
    pub symlinks: u64,
    pub length: u64,
}
