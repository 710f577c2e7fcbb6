//! Operations on the tree's shape: directories, symlinks, renames and deletes.

use crate::namespace::error::NsError;
use crate::namespace::inode::{InodeKind, ROOT_ID};
use crate::namespace::kv::{KvRead, Txn};
use crate::namespace::ops::{ApplyCtx, OpOutput};
use crate::namespace::path::NsPath;
use crate::namespace::tree::{Result, lookup, must_load, resolve, resolve_parent};
use crate::namespace::write::*;
use crate::namespace::{reclaim, snapshot};

/// Creates a directory (and, with `parents`, its missing ancestors).
pub(super) fn mkdir<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    parents: &bool,
    permission: &u16,
    owner: &str,
    group: &Option<String>,
) -> Result<OpOutput> {
    validate_permission(*permission)?;
    validate_name("owner", owner, 256)?;
    if path.is_root() {
        return if *parents {
            Ok(OpOutput::Inode(must_load(txn, ROOT_ID)?))
        } else {
            Err(NsError::AlreadyExists("/".into()).into())
        };
    }
    if *parents {
        return Ok(OpOutput::Inode(mkdirs(
            txn,
            ctx,
            path,
            *permission,
            owner,
            group.as_deref(),
        )?));
    }
    let parent = resolve_parent(txn, path)?;
    let name = path.name().unwrap_or_default();
    if lookup(txn, parent.id, name)?.is_some() {
        return Err(NsError::AlreadyExists(path.to_string()).into());
    }
    let new = NewInode {
        kind: InodeKind::Directory,
        permission: *permission,
        owner,
        group: group.as_deref(),
        policy: None,
        under_construction: None,
        symlink_target: None,
        block_size: 0,
    };
    Ok(OpOutput::Inode(create_child(txn, ctx, &parent, name, new)?))
}

/// Creates a symbolic link.
pub(super) fn symlink<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    target: &str,
    create_parents: &bool,
    owner: &str,
) -> Result<OpOutput> {
    validate_name("symlink target", target, 4096)?;
    validate_name("owner", owner, 256)?;
    if path.is_root() {
        return Err(NsError::AlreadyExists("/".into()).into());
    }
    let parent = parent_for_create(txn, ctx, path, *create_parents, owner)?;
    let name = path.name().unwrap_or_default();
    if lookup(txn, parent.id, name)?.is_some() {
        return Err(NsError::AlreadyExists(path.to_string()).into());
    }
    let new = NewInode {
        block_size: 0,
        kind: InodeKind::Symlink,
        permission: 0o777,
        owner,
        group: None,
        policy: None,
        under_construction: None,
        symlink_target: Some(target.to_owned()),
    };
    Ok(OpOutput::Inode(create_child(txn, ctx, &parent, name, new)?))
}

/// Moves `src` to `dst`, replacing an empty directory or a file there when `overwrite`.
pub(super) fn rename<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    src: &NsPath,
    dst: &NsPath,
    overwrite: &bool,
) -> Result<OpOutput> {
    let now = ctx.now_ms;
    if src.is_root() {
        return Err(NsError::RootNotAllowed(src.to_string()).into());
    }
    if dst.is_root() {
        return Err(NsError::RootNotAllowed(dst.to_string()).into());
    }
    let mut node = resolve(txn, src)?;
    if src == dst {
        return Ok(OpOutput::Inode(node));
    }
    if dst.is_strictly_under(src) {
        return Err(NsError::RenameIntoSubtree {
            src: src.to_string(),
            dst: dst.to_string(),
        }
        .into());
    }
    let dparent = resolve_parent(txn, dst)?;
    let dname = dst.name().unwrap_or_default();
    if let Some(existing_id) = lookup(txn, dparent.id, dname)? {
        let existing = must_load(txn, existing_id)?;
        if !overwrite {
            return Err(NsError::AlreadyExists(dst.to_string()).into());
        }
        match (node.is_dir(), existing.is_dir()) {
            (true, false) => return Err(NsError::NotADirectory(dst.to_string()).into()),
            (false, true) => return Err(NsError::IsADirectory(dst.to_string()).into()),
            (true, true) if existing.children > 0 => {
                return Err(NsError::DirectoryNotEmpty(dst.to_string()).into());
            }
            _ => {}
        }
        snapshot::check_removable(txn, &existing, dst)?;
        drop_inode_records(txn, &existing)?;
        unlink(txn, dparent.id, dname, now)?;
    }
    let sname = src.name().unwrap_or_default();
    unlink(txn, node.parent, sname, now)?;
    link(txn, dparent.id, dname, node.id, now)?;
    node = must_load(txn, node.id)?;
    node.parent = dparent.id;
    node.name = dname.to_owned();
    put_inode(txn, &node);
    Ok(OpOutput::Inode(node))
}

/// Removes a file, a symlink, an empty directory, or with `recursive` a whole subtree. A
/// directory with children is detached in this entry and reclaimed by later ones
/// ([`reclaim`](crate::namespace::reclaim)), so the work of one entry never grows with the
/// subtree. Returns `Removed(1)`: one name left the namespace.
pub(super) fn delete<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    recursive: &bool,
) -> Result<OpOutput> {
    let now = ctx.now_ms;
    if path.is_root() {
        return Err(NsError::RootNotAllowed("/".into()).into());
    }
    let node = resolve(txn, path)?;
    if node.is_dir() && node.children > 0 && !recursive {
        return Err(NsError::DirectoryNotEmpty(path.to_string()).into());
    }
    snapshot::check_removable(txn, &node, path)?;
    unlink(txn, node.parent, &node.name, now)?;
    if node.is_dir() && node.children > 0 {
        reclaim::detach(txn, node);
    } else {
        drop_inode_records(txn, &node)?;
    }
    Ok(OpOutput::Removed(1))
}

/// Removes up to `budget` records of detached subtrees (`Op::Reclaim`).
pub(super) fn reclaim<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, budget: &u64) -> Result<OpOutput> {
    Ok(OpOutput::Removed(reclaim::reclaim(txn, *budget)?))
}
