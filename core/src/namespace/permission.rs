//! POSIX permissions as HDFS's `FSPermissionChecker` applies them (DESIGN §9): execute on
//! every directory a path passes through, write on the parent to create, delete or rename,
//! read to list or read a file, the sticky bit on shared directories, the owner (or the
//! superuser) to change modes, the superuser to change owners. The caller an operation runs
//! as ([`Access`]) is fixed by the active and carried in the entry, and mutations are checked
//! inside their apply, against the state they apply to: every member decides alike, and no
//! change of mode can slip in between a check and the write it allowed.
//!
//! One departure from HDFS: a recursive delete needs write on the parent (and the sticky
//! bit's consent), not every permission on every descendant, which HDFS checks by walking the
//! subtree; a delete here is one small entry whatever the size of the tree (DESIGN §2).

use serde::{Deserialize, Serialize};

use super::error::{ApplyError, NsError};
use super::inode::Inode;
use super::kv::KvRead;
use super::ops::Op;
use super::path::NsPath;
use super::tree::{self, Result};

/// Read permission bit (of any class).
pub const READ: u16 = 4;
/// Write permission bit.
pub const WRITE: u16 = 2;
/// Execute (search, for a directory) permission bit.
pub const EXECUTE: u16 = 1;
/// The sticky bit: in such a directory only an entry's owner, the directory's owner and the
/// superuser may delete or rename the entry.
pub const STICKY: u16 = 0o1000;

/// Who an operation runs as.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    pub user: String,
    pub groups: Vec<String>,
    /// Decided by the active from its configuration: passes every check.
    pub superuser: bool,
    /// The caller's machine (its address as the active saw it), carried from format level 2
    /// on (batch version 3); empty before, and for the active's own work.
    pub machine: String,
}

impl Access {
    /// Whether the caller may `want` (a mask of [`READ`], [`WRITE`], [`EXECUTE`]) on `inode`:
    /// the owner's bits if it owns it, else the group's if it is in the group, else the
    /// others'.
    pub fn may(&self, inode: &Inode, want: u16) -> bool {
        if self.superuser {
            return true;
        }
        let mode = inode.permission;
        let bits = if inode.owner == self.user {
            mode >> 6
        } else if self.groups.contains(&inode.group) {
            mode >> 3
        } else {
            mode
        } & 7;
        bits & want == want
    }

    fn is_owner(&self, inode: &Inode) -> bool {
        self.superuser || inode.owner == self.user
    }

    /// Whether the sticky bit of `dir` lets the caller remove or rename `entry` in it.
    fn sticky_allows(&self, dir: &Inode, entry: &Inode) -> bool {
        dir.permission & STICKY == 0 || self.is_owner(entry) || self.is_owner(dir)
    }
}

fn denied(access: &Access, what: &str, path: &NsPath) -> ApplyError {
    NsError::PermissionDenied {
        user: access.user.clone(),
        what: what.to_owned(),
        path: path.to_string(),
    }
    .into()
}

/// Checks `want` on the nearest existing ancestor of a path, when it is a directory (under a
/// file the operation fails as `NotADirectory` on its own).
fn need_ancestor(access: &Access, (at, dir): &(NsPath, Inode), want: u16) -> Result<()> {
    if dir.is_dir() {
        need(access, dir, want, at)
    } else {
        Ok(())
    }
}

fn need(access: &Access, inode: &Inode, want: u16, path: &NsPath) -> Result<()> {
    if access.may(inode, want) {
        return Ok(());
    }
    let what = match want {
        READ => "read",
        WRITE => "write",
        EXECUTE => "search",
        _ if want == READ | EXECUTE => "list",
        _ if want == WRITE | EXECUTE => "write in",
        _ => "access",
    };
    Err(denied(access, what, path))
}

/// The existing inodes along `path` from the root, with their paths: every directory it
/// passes through, and the last component when it exists. Stops at the first missing
/// component or non-directory (the operation then fails on its own terms).
fn walk<R: KvRead + ?Sized>(kv: &R, path: &NsPath) -> Result<Vec<(NsPath, Inode)>> {
    let mut cur = tree::must_load(kv, super::inode::ROOT_ID)?;
    let mut at = NsPath::root();
    let mut out = Vec::new();
    for name in path.components() {
        if !cur.is_dir() {
            break;
        }
        let next = tree::lookup(kv, cur.id, name)?;
        out.push((at.clone(), cur));
        let Some(id) = next else {
            return Ok(out);
        };
        at = at.child(name);
        cur = tree::must_load(kv, id)?;
    }
    out.push((at, cur));
    Ok(out)
}

/// What [`walk`] found of a path: searched through every directory on the way (checked), and
/// the nearest existing ancestor, the parent and the inode itself when they exist.
struct Found {
    /// The deepest existing inode strictly above the path's last component.
    ancestor: (NsPath, Inode),
    /// The inode at the path, when it exists.
    node: Option<Inode>,
    /// Whether the last existing ancestor is the path's parent.
    parent_exists: bool,
}

/// Checks search (execute) on every directory above the path's last component, and returns
/// what exists of it.
fn traverse<R: KvRead + ?Sized>(kv: &R, access: &Access, path: &NsPath) -> Result<Found> {
    let mut steps = walk(kv, path)?;
    let depth = path.components().len();
    let node = if steps.len() == depth + 1 {
        steps.pop().map(|(_, n)| n)
    } else {
        None
    };
    for (at, dir) in &steps {
        if dir.is_dir() {
            need(access, dir, EXECUTE, at)?;
        }
    }
    let parent_exists = depth > 0 && steps.len() == depth;
    let ancestor = match steps.pop() {
        Some(a) => a,
        // The root itself: its "ancestor" is itself.
        None => (NsPath::root(), tree::must_load(kv, super::inode::ROOT_ID)?),
    };
    Ok(Found {
        ancestor,
        node,
        parent_exists,
    })
}

/// Checks that `access` may carry out `op`, against the state it is about to apply to. An
/// operation the namespace will refuse anyway (a missing parent, say) is let through to be
/// refused for that reason.
pub fn check_op<R: KvRead + ?Sized>(kv: &R, access: &Access, op: &Op) -> Result<()> {
    if access.superuser {
        return Ok(());
    }
    match op {
        Op::Mkdir { path, group, .. } => {
            own_group(access, group.as_deref(), path)?;
            let f = traverse(kv, access, path)?;
            if f.node.is_none() {
                need_ancestor(access, &f.ancestor, WRITE | EXECUTE)?;
            }
            Ok(())
        }
        Op::Symlink { path, .. } => {
            let f = traverse(kv, access, path)?;
            if f.node.is_none() {
                need_ancestor(access, &f.ancestor, WRITE | EXECUTE)?;
            }
            Ok(())
        }
        Op::Create {
            path,
            overwrite,
            group,
            ..
        } => {
            own_group(access, group.as_deref(), path)?;
            let f = traverse(kv, access, path)?;
            match &f.node {
                Some(file) if *overwrite => {
                    need(access, file, WRITE, path)?;
                    need_ancestor(access, &f.ancestor, WRITE | EXECUTE)
                }
                Some(_) => Ok(()),
                None => need_ancestor(access, &f.ancestor, WRITE | EXECUTE),
            }
        }
        Op::Append { path, .. } | Op::RecoverLease { path, .. } => {
            let f = traverse(kv, access, path)?;
            match &f.node {
                Some(file) => need(access, file, WRITE, path),
                None => Ok(()),
            }
        }
        Op::SetXattr { path, name, .. }
        | Op::AppendXattr { path, name, .. }
        | Op::RemoveXattr { path, name } => {
            if !user_xattr(access, name) {
                return Err(denied(access, &format!("set attribute {name} on"), path));
            }
            let f = traverse(kv, access, path)?;
            match &f.node {
                Some(node) => need(access, node, WRITE, path),
                None => Ok(()),
            }
        }
        Op::SetTimes { path, .. } | Op::SetStoragePolicy { path, .. } => {
            let f = traverse(kv, access, path)?;
            match &f.node {
                Some(node) => need(access, node, WRITE, path),
                None => Ok(()),
            }
        }
        Op::Delete { path, .. } => remove_entry(kv, access, path),
        Op::Rename {
            src,
            dst,
            overwrite,
        } => {
            remove_entry(kv, access, src)?;
            let f = traverse(kv, access, dst)?;
            need_ancestor(access, &f.ancestor, WRITE | EXECUTE)?;
            match &f.node {
                Some(old)
                    if *overwrite
                        && f.parent_exists
                        && !access.sticky_allows(&f.ancestor.1, old) =>
                {
                    Err(denied(access, "replace (sticky bit)", dst))
                }
                _ => Ok(()),
            }
        }
        Op::SetPermission { path, .. } => {
            let f = traverse(kv, access, path)?;
            match &f.node {
                Some(node) if !access.is_owner(node) => {
                    Err(denied(access, "change the mode of (owner only)", path))
                }
                _ => Ok(()),
            }
        }
        Op::SetOwner { path, owner, group } => {
            let f = traverse(kv, access, path)?;
            let Some(node) = &f.node else {
                return Ok(());
            };
            // As HDFS: a user may name itself the owner (`chown alice:staff` by alice), but
            // only the superuser gives a file to someone else.
            if owner.as_ref().is_some_and(|o| *o != access.user) {
                return Err(denied(access, "change the owner of (superuser only)", path));
            }
            if !access.is_owner(node) {
                return Err(denied(access, "change the group of (owner only)", path));
            }
            match group {
                Some(g) if !access.groups.contains(g) => Err(denied(
                    access,
                    &format!("give to group {g} (not a member) the file"),
                    path,
                )),
                _ => Ok(()),
            }
        }
        // A writer's own file: the lease holder (named under the caller by the active) is
        // checked by the operation; the path must still be searchable.
        Op::Complete { path, .. } | Op::AddBlock { path, .. } => {
            traverse(kv, access, path).map(drop)
        }
        Op::RenewLease { .. } => Ok(()),
        // The active's own work, and Admin (authorized before it reaches the journal). No
        // request carries `BeginLeaseRecovery`: the active proposes it, for a recovery it
        // runs itself or one a caller's `RecoverLease` passed this check for.
        Op::Reclaim { .. }
        | Op::SetThrottle(_)
        | Op::RollBlockKey { .. }
        | Op::BeginLeaseRecovery { .. } => Ok(()),
        // Blockservers out of service, and the cluster's format level: the superuser's
        // (checked above) alone, here as well as by the service's Admin rule.
        Op::SetAdminState { .. } => Err(denied(
            access,
            "take a blockserver out of service for",
            &NsPath::root(),
        )),
        Op::Upgrade(_) => Err(denied(access, "upgrade the cluster of", &NsPath::root())),
        // The federation's mount table: the superuser's (checked above) alone, here as well
        // as by the service's Admin rule, so that no other way in (a router) can skip it.
        Op::MountAdd { at, .. } | Op::MountRemove { at } | Op::MountMove { at, .. } => {
            Err(denied(access, "edit the mount table at", at))
        }
        Op::Freeze { path, .. } => Err(denied(access, "freeze or thaw", path)),
        Op::SetDefaultNameservice { .. } => Err(denied(
            access,
            "set the default nameservice of",
            &NsPath::root(),
        )),
        // As HDFS: making a directory snapshottable is the superuser's; its owner takes,
        // deletes and renames its snapshots.
        Op::AllowSnapshot { path } | Op::DisallowSnapshot { path } => Err(denied(
            access,
            "change whether snapshots are allowed on",
            path,
        )),
        Op::CreateSnapshot { path, .. }
        | Op::DeleteSnapshot { path, .. }
        | Op::RenameSnapshot { path, .. } => {
            let f = traverse(kv, access, path)?;
            match &f.node {
                Some(node) if !access.is_owner(node) => {
                    Err(denied(access, "manage the snapshots of (owner only)", path))
                }
                _ => Ok(()),
            }
        }
    }
}

/// Refuses a new inode's group that the caller is not in (the superuser may name any): a
/// user cannot put a file in the admin group by creating it there.
fn own_group(access: &Access, group: Option<&str>, path: &NsPath) -> Result<()> {
    match group {
        Some(g) if !access.superuser && !access.groups.iter().any(|m| m == g) => Err(denied(
            access,
            &format!("create in group {g} (not a member)"),
            path,
        )),
        _ => Ok(()),
    }
}

/// Whether the caller may see and change the extended attribute `name`: the superuser any,
/// a user those of the `user.` namespace only (HDFS keeps `trusted.` and `raw.` to the
/// superuser and `system.` and `security.` to the file system itself).
pub fn user_xattr(access: &Access, name: &str) -> bool {
    access.superuser || name.starts_with("user.")
}

/// Removing the entry at `path` (delete, the source of a rename): write on its parent, and
/// the sticky bit's consent.
fn remove_entry<R: KvRead + ?Sized>(kv: &R, access: &Access, path: &NsPath) -> Result<()> {
    let f = traverse(kv, access, path)?;
    let Some(node) = &f.node else {
        return Ok(());
    };
    need_ancestor(access, &f.ancestor, WRITE | EXECUTE)?;
    if f.parent_exists && !access.sticky_allows(&f.ancestor.1, node) {
        return Err(denied(access, "remove (sticky bit)", path));
    }
    Ok(())
}

/// Refuses a directory at `path` the caller may not list (read and search), for the reads
/// that descend a subtree (a content summary, as HDFS's `subAccess`).
pub(super) fn may_list(access: &Access, inode: &Inode, path: &str) -> Result<()> {
    if !inode.is_dir() || access.may(inode, READ | EXECUTE) {
        return Ok(());
    }
    Err(NsError::PermissionDenied {
        user: access.user.clone(),
        what: "list".into(),
        path: path.to_owned(),
    }
    .into())
}

/// What a read needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAccess {
    /// Stat: search on the way only.
    Stat,
    /// List a directory or sum a subtree: read and search on it (a file: stat).
    List,
    /// A file's bytes or extended attributes: read on it.
    Read,
}

/// Checks that `access` may read `path` as `kind`.
pub fn check_read<R: KvRead + ?Sized>(
    kv: &R,
    access: &Access,
    path: &NsPath,
    kind: ReadAccess,
) -> Result<()> {
    if access.superuser {
        return Ok(());
    }
    let f = traverse(kv, access, path)?;
    match (&f.node, kind) {
        (Some(node), ReadAccess::List) if node.is_dir() => need(access, node, READ | EXECUTE, path),
        (Some(node), ReadAccess::Read) => need(access, node, READ, path),
        _ => Ok(()),
    }
}
