//! Namespace mutations as they are journaled. Everything an operation needs that is not in
//! the replicated state (the time, the lease length) is fixed by the leader in the entry
//! ([`ApplyCtx`]), so that apply is a pure function of the state and the entry.

use serde::{Deserialize, Serialize};

use super::admin_state::AdminChange;
use super::blocks::{self, BlockGroup};
use super::error::NsError;
use super::inode::{Inode, StoragePolicy};
use super::path::NsPath;
use super::throttle::ThrottleChange;
use super::tree::MAX_XATTR_VALUE;
use super::upgrade::UpgradeStep;
use crate::block_token::BlockKey;
use crate::federation::{Destination, NameserviceId};
use crate::id::{BlockServerId, InodeId};

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
    Value(#[serde(with = "crate::format::raw_bytes")] Vec<u8>),
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
        #[serde(with = "crate::format::raw_bytes")]
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
        #[serde(with = "crate::format::raw_bytes")]
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
    /// Removes up to `budget` records (an inode, or a block group) of the subtrees that
    /// recursive deletes detached ([`super::reclaim`]). Proposed by the active's reclaim
    /// worker, one at a time; the leader's budget rides in the entry so that every member
    /// removes the same records.
    Reclaim {
        budget: u64,
    },
    /// Adds a block key (DESIGN §9) the active made: its secret, id and times are the
    /// leader's, carried in the entry, so that every member holds the same keys.
    RollBlockKey {
        key: BlockKey,
    },
    /// Moves a file to lease recovery's holder before the active ends its writer's streams
    /// (`exec::files::begin_lease_recovery`): the file at `path` must still be `inode`,
    /// written by `holder` (or already the recovery's), and, unless `force` (a caller's
    /// `RecoverLease`), `holder`'s lease must have run out by the entry's time. Appended
    /// after `RollBlockKey`.
    BeginLeaseRecovery {
        path: NsPath,
        inode: InodeId,
        holder: String,
        force: bool,
    },
    /// Adds a mount point to the federation's mount table this nameservice keeps (DESIGN
    /// §10). Admin only. Appended after `BeginLeaseRecovery`.
    MountAdd {
        at: NsPath,
        to: Destination,
    },
    /// Removes a mount point (its data stays in its nameservice). Admin only.
    MountRemove {
        at: NsPath,
    },
    /// Sets the nameservice of the paths under no mount point (`None`: nobody's). Admin only.
    SetDefaultNameservice {
        nameservice: Option<NameserviceId>,
    },
    /// Makes a directory snapshottable (DESIGN §13). The superuser's. Appended after
    /// `SetDefaultNameservice`, as the four after it.
    AllowSnapshot {
        path: NsPath,
    },
    /// Makes a directory without snapshots no longer snapshottable. The superuser's.
    DisallowSnapshot {
        path: NsPath,
    },
    /// Takes a snapshot of a snapshottable directory, named `name` or, without one, after
    /// the entry's time (`snapshot::default_name`). Its owner's or the superuser's.
    CreateSnapshot {
        path: NsPath,
        name: Option<String>,
    },
    DeleteSnapshot {
        path: NsPath,
        name: String,
    },
    RenameSnapshot {
        path: NsPath,
        from: String,
        to: String,
    },
    /// Makes `path` read-only (`frozen`) or writable again (DESIGN §13, `balance`'s window):
    /// while frozen, every change at or below it, and any that would move or remove it, is
    /// refused with the retriable `ReadOnly`, whoever sends it. The superuser's. Appended
    /// after `RenameSnapshot`, as the one after it.
    Freeze {
        path: NsPath,
        frozen: bool,
    },
    /// Points mount point `at`, which must lead to `from`, at `to`: one entry, so that the
    /// table never lacks the mount (`balance`'s switch). Admin only.
    MountMove {
        at: NsPath,
        from: Destination,
        to: Destination,
    },
    /// Takes blockserver `server` out of service or back (DESIGN §11: decommission,
    /// maintenance). Admin only. Appended after `MountMove`.
    SetAdminState {
        server: BlockServerId,
        change: AdminChange,
    },
    /// A step of a rolling upgrade (DESIGN §11): prepare, finalize (raise the cluster's
    /// format level), rollback. Admin only. Appended after `SetAdminState`.
    Upgrade(UpgradeStep),
}

/// The largest operation the namespace journals, by [`Op::size_bound`]: a deepest path of
/// longest names (about 256 KB) and a largest xattr value fit, with room to spare.
pub const MAX_OP_BYTES: usize = 512 * 1024;

/// Fixed part of an operation's size bound: its variant tag, integers and flags.
const FIXED_BYTES: usize = 64;

fn str_bound(s: &str) -> usize {
    s.len().saturating_add(5)
}

impl Op {
    /// Checks what can be checked before an operation is journaled, so that a request the
    /// apply would refuse for its size, or one too large to journal, never reaches the
    /// journal: xattr values up to [`MAX_XATTR_VALUE`], and the whole operation up to
    /// [`MAX_OP_BYTES`]. (Everything else is checked at apply, against the state.)
    pub fn check_bounds(&self) -> Result<(), NsError> {
        let value = match self {
            Op::SetXattr { value, expect, .. } => match expect {
                XattrExpect::Value(v) => value.len().max(v.len()),
                _ => value.len(),
            },
            Op::AppendXattr { value, .. } => value.len(),
            _ => 0,
        };
        if value > MAX_XATTR_VALUE {
            return Err(NsError::InvalidArgument(format!(
                "xattr value of {value} bytes is above {MAX_XATTR_VALUE}"
            )));
        }
        let size = self.size_bound();
        if size > MAX_OP_BYTES {
            return Err(NsError::InvalidArgument(format!(
                "{} of about {size} bytes is above the journal's {MAX_OP_BYTES} per operation",
                self.name()
            )));
        }
        Ok(())
    }

    /// A digest of the operation (SHA-256 of its encoding): what the retry cache keeps beside
    /// a result, so that a call id retried with another operation is refused rather than
    /// answered with the first one's result (issue #16). Collision-resistant, because the
    /// operation a victim will send is often predictable (a rename of a known path) and a
    /// weak digest would let another client record a look-alike under the victim's call id.
    /// An operation whose encoding fails (it cannot: every field is plain data) digests as
    /// empty input, which no encodable operation matches.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest;
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        sha2::Sha256::digest(&bytes).into()
    }

    /// An upper bound of the operation's encoded size in a journal entry, in bytes, computed
    /// without encoding it: what the proposer adds up to keep an entry within its byte
    /// bound.
    pub fn size_bound(&self) -> usize {
        let strs = |xs: &[&str]| {
            xs.iter()
                .map(|s| str_bound(s))
                .fold(0, usize::saturating_add)
        };
        let opt = |x: &Option<String>| x.as_deref().map_or(1, str_bound);
        let variable = match self {
            Op::Mkdir {
                path, owner, group, ..
            } => path.size_bound() + str_bound(owner) + opt(group),
            Op::Create {
                path,
                owner,
                group,
                holder,
                ..
            } => path.size_bound() + strs(&[owner, holder]) + opt(group),
            Op::Complete { path, holder, .. }
            | Op::Append { path, holder }
            | Op::AddBlock { path, holder, .. } => {
                let targets = match self {
                    Op::AddBlock { targets, .. } => targets.len().saturating_mul(10),
                    _ => 0,
                };
                path.size_bound() + str_bound(holder) + targets
            }
            Op::Rename { src, dst, .. } => src.size_bound() + dst.size_bound(),
            Op::Delete { path, .. }
            | Op::SetPermission { path, .. }
            | Op::SetTimes { path, .. }
            | Op::SetStoragePolicy { path, .. }
            | Op::RecoverLease { path, .. } => path.size_bound(),
            Op::BeginLeaseRecovery { path, holder, .. } => path.size_bound() + str_bound(holder),
            Op::SetOwner { path, owner, group } => path.size_bound() + opt(owner) + opt(group),
            Op::RenewLease { holder } => str_bound(holder),
            Op::Symlink {
                path,
                target,
                owner,
                ..
            } => path.size_bound() + strs(&[target, owner]),
            Op::SetXattr {
                path,
                name,
                value,
                expect,
            } => {
                let expected = match expect {
                    XattrExpect::Value(v) => v.len() + 5,
                    _ => 0,
                };
                path.size_bound() + str_bound(name) + value.len() + 5 + expected
            }
            Op::AppendXattr { path, name, value } => {
                path.size_bound() + str_bound(name) + value.len() + 5
            }
            Op::RemoveXattr { path, name } => path.size_bound() + str_bound(name),
            Op::SetThrottle(change) => change.size_bound(),
            Op::Reclaim { .. } => 0,
            Op::RollBlockKey { .. } => 64,
            Op::MountAdd { at, to } => {
                at.size_bound() + to.path.size_bound() + str_bound(to.nameservice.as_str())
            }
            Op::MountRemove { at } => at.size_bound(),
            Op::SetDefaultNameservice { nameservice } => {
                nameservice.as_ref().map_or(0, |n| str_bound(n.as_str()))
            }
            Op::AllowSnapshot { path } | Op::DisallowSnapshot { path } => path.size_bound(),
            Op::CreateSnapshot { path, name } => path.size_bound() + opt(name),
            Op::DeleteSnapshot { path, name } => path.size_bound() + str_bound(name),
            Op::RenameSnapshot { path, from, to } => path.size_bound() + strs(&[from, to]),
            Op::Freeze { path, .. } => path.size_bound(),
            Op::MountMove { at, from, to } => {
                at.size_bound()
                    + from.path.size_bound()
                    + to.path.size_bound()
                    + str_bound(from.nameservice.as_str())
                    + str_bound(to.nameservice.as_str())
            }
            Op::SetAdminState { .. } | Op::Upgrade(_) => 0,
        };
        FIXED_BYTES.saturating_add(variable)
    }

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
            Op::Reclaim { .. } => "reclaim",
            Op::RollBlockKey { .. } => "roll_block_key",
            Op::BeginLeaseRecovery { .. } => "begin_lease_recovery",
            Op::MountAdd { .. } => "mount_add",
            Op::MountRemove { .. } => "mount_remove",
            Op::SetDefaultNameservice { .. } => "set_default_nameservice",
            Op::AllowSnapshot { .. } => "allow_snapshot",
            Op::DisallowSnapshot { .. } => "disallow_snapshot",
            Op::CreateSnapshot { .. } => "create_snapshot",
            Op::DeleteSnapshot { .. } => "delete_snapshot",
            Op::RenameSnapshot { .. } => "rename_snapshot",
            Op::Freeze { .. } => "freeze",
            Op::MountMove { .. } => "mount_move",
            Op::SetAdminState { .. } => "set_admin_state",
            Op::Upgrade(_) => "upgrade",
        }
    }

    /// The paths the operation changes something at (snapshots' own operations name their
    /// directory, which they do not change).
    pub fn written_paths(&self) -> Vec<&NsPath> {
        match self {
            Op::Mkdir { path, .. }
            | Op::Create { path, .. }
            | Op::Complete { path, .. }
            | Op::Append { path, .. }
            | Op::Delete { path, .. }
            | Op::SetPermission { path, .. }
            | Op::SetOwner { path, .. }
            | Op::SetTimes { path, .. }
            | Op::SetStoragePolicy { path, .. }
            | Op::RecoverLease { path, .. }
            | Op::Symlink { path, .. }
            | Op::SetXattr { path, .. }
            | Op::RemoveXattr { path, .. }
            | Op::AppendXattr { path, .. }
            | Op::AddBlock { path, .. }
            | Op::BeginLeaseRecovery { path, .. } => vec![path],
            Op::Rename { src, dst, .. } => vec![src, dst],
            Op::MountAdd { at, .. } | Op::MountRemove { at } | Op::MountMove { at, .. } => {
                vec![at]
            }
            Op::RenewLease { .. }
            | Op::SetThrottle(_)
            | Op::Reclaim { .. }
            | Op::RollBlockKey { .. }
            | Op::SetDefaultNameservice { .. }
            | Op::AllowSnapshot { .. }
            | Op::DisallowSnapshot { .. }
            | Op::CreateSnapshot { .. }
            | Op::DeleteSnapshot { .. }
            | Op::RenameSnapshot { .. }
            | Op::Freeze { .. }
            | Op::SetAdminState { .. }
            | Op::Upgrade(_) => Vec::new(),
        }
    }
}

/// What a successful mutation returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpOutput {
    /// The inode created or changed.
    Inode(Inode),
    /// A delete: the names removed (1; a subtree's contents are reclaimed later). A reclaim
    /// step: the inodes it removed.
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
    /// Bytes stored for the files: copies and parity included (HDFS's `spaceConsumed`).
    #[serde(default)]
    pub space_consumed: u64,
}
