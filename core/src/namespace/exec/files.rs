//! Operations on files' lifecycle: create, the writer's block groups, complete, append,
//! and leases.

use crate::id::{BlockServerId, InodeId};
use crate::namespace::blocks::{self, GroupId};
use crate::namespace::error::NsError;
use crate::namespace::inode::{InodeKind, LeaseRecord, StoragePolicy, UnderConstruction, encode};
use crate::namespace::keys;
use crate::namespace::kv::{Cf, KvRead, Txn};
use crate::namespace::ops::{ApplyCtx, OpOutput};
use crate::namespace::path::NsPath;
use crate::namespace::tree::{Result, lookup, must_load, resolve};
use crate::namespace::write::*;

/// The fields of [`Op::Create`](crate::namespace::Op::Create), borrowed.
pub(super) struct NewFile<'a> {
    pub(super) path: &'a NsPath,
    pub(super) overwrite: bool,
    pub(super) create_parents: bool,
    pub(super) permission: u16,
    pub(super) owner: &'a str,
    pub(super) group: Option<&'a str>,
    pub(super) policy: Option<&'a StoragePolicy>,
    pub(super) holder: &'a str,
    pub(super) block_size: u64,
    /// The caller's machine (see [`writer`]).
    pub(super) machine: &'a str,
}

/// The writer of a file opened by `holder` from `machine`: the machine is recorded from
/// format level 2 on (inode version 2), so that nothing an older binary cannot read is
/// written before an upgrade to it is finalized.
fn writer<R: KvRead + ?Sized>(txn: &Txn<'_, R>, holder: &str, machine: &str) -> UnderConstruction {
    UnderConstruction {
        holder: holder.to_owned(),
        client_machine: if txn.level() >= crate::level::Level(2) {
            machine.to_owned()
        } else {
            String::new()
        },
    }
}

/// Creates a file under construction, leased to `holder` (overwriting a file whose lease is
/// free).
pub(super) fn create<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    file: NewFile<'_>,
) -> Result<OpOutput> {
    let NewFile {
        path,
        overwrite,
        create_parents,
        permission,
        owner,
        group,
        policy,
        holder,
        block_size,
        machine,
    } = file;
    let now = ctx.now_ms;
    validate_permission(permission)?;
    validate_name("owner", owner, 256)?;
    validate_holder(holder)?;
    if path.is_root() {
        return Err(NsError::IsADirectory("/".into()).into());
    }
    let parent = parent_for_create(txn, ctx, path, create_parents, owner)?;
    let name = path.name().unwrap_or_default();
    if let Some(id) = lookup(txn, parent.id, name)? {
        let existing = must_load(txn, id)?;
        if existing.is_dir() {
            return Err(NsError::IsADirectory(path.to_string()).into());
        }
        if !overwrite {
            return Err(NsError::AlreadyExists(path.to_string()).into());
        }
        if let Some(uc) = &existing.under_construction
            && uc.holder != holder
            && lease_live(txn, &uc.holder, now)?
        {
            return Err(NsError::LeaseConflict {
                path: path.to_string(),
                holder: uc.holder.clone(),
            }
            .into());
        }
        drop_inode_records(txn, &existing)?;
        unlink(txn, parent.id, name, now)?;
    }
    let parent = must_load(txn, parent.id)?;
    let new = NewInode {
        kind: InodeKind::File,
        permission,
        owner,
        group,
        policy: policy.cloned(),
        under_construction: Some(writer(txn, holder, machine)),
        symlink_target: None,
        block_size,
    };
    let inode = create_child(txn, ctx, &parent, name, new)?;
    grant_lease(txn, ctx, holder, inode.id)?;
    Ok(OpOutput::Inode(inode))
}

/// Closes a file its writer has finished: the open group gets its length.
pub(super) fn complete<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    holder: &str,
    length: &u64,
) -> Result<OpOutput> {
    let now = ctx.now_ms;
    let mut node = written_by(txn, path, holder)?;
    blocks::close_open(txn, &mut node, *length, &path.to_string())?;
    release_lease_file(txn, holder, node.id)?;
    node.under_construction = None;
    node.mtime_ms = now;
    put_inode(txn, &node);
    Ok(OpOutput::Inode(node))
}

/// Closes the open block group and allocates the next on the targets the leader chose.
pub(super) fn add_block<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    holder: &str,
    file_length: &u64,
    targets: &[BlockServerId],
) -> Result<OpOutput> {
    let now = ctx.now_ms;
    let mut node = written_by(txn, path, holder)?;
    let group = blocks::add(txn, &mut node, *file_length, targets, &path.to_string())?;
    node.mtime_ms = now;
    put_inode(txn, &node);
    Ok(OpOutput::Group(node, group))
}

/// Reopens a closed file for `holder` (or takes over one whose writer's lease ran out).
pub(super) fn append<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    holder: &str,
    machine: &str,
) -> Result<OpOutput> {
    let now = ctx.now_ms;
    validate_holder(holder)?;
    let mut node = resolve(txn, path)?;
    match node.kind {
        InodeKind::Directory => return Err(NsError::IsADirectory(path.to_string()).into()),
        InodeKind::Symlink => {
            return Err(
                NsError::InvalidArgument(format!("{path}: cannot append to a symlink")).into(),
            );
        }
        InodeKind::File => {}
    }
    if let Some(uc) = &node.under_construction
        && uc.holder != *holder
    {
        if lease_live(txn, &uc.holder, now)? {
            return Err(NsError::LeaseConflict {
                path: path.to_string(),
                holder: uc.holder.clone(),
            }
            .into());
        }
        // The old writer's lease ran out. With an open group it may still be writing that
        // group's blocks (cut off, not dead): the group must be recovered first (its blocks'
        // streams ended and restamped, `RecoverLease`, which the active's lease worker runs
        // for every expired lease), as HDFS's append triggers lease recovery and refuses
        // until it is done. Without one, the new writer takes the file over.
        if blocks::open_group(txn, &node)?.is_some() {
            return Err(NsError::LeaseConflict {
                path: path.to_string(),
                holder: uc.holder.clone(),
            }
            .into());
        }
        release_lease_file(txn, &uc.holder, node.id)?;
    }
    node.under_construction = Some(writer(txn, holder, machine));
    node.mtime_ms = now;
    put_inode(txn, &node);
    grant_lease(txn, ctx, holder, node.id)?;
    Ok(OpOutput::Inode(node))
}

/// Moves a file whose open group lease recovery is about to end and restamp to the
/// recovery's holder ([`recovery_holder`]), with a lease of its own: from this entry on, its
/// writer's `AddBlock`, `Complete` and `RenewLease` no longer touch it, so nothing the writer
/// does can close the group at a length no copy has once its streams are ended. The file at
/// `path` must still be `inode` and written by `holder` (a writer that renewed in time, or a
/// new file created over the old one, is not recovered), unless the recovery holds it
/// already: then its lease is renewed, which spaces out the attempts at a recovery that
/// cannot finish yet. If the active fails before `RecoverLease`, the recovery's lease runs
/// out and the next active starts over. Proposed by the active only (no request carries it).
pub(super) fn begin_lease_recovery<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    inode: InodeId,
    holder: &str,
    force: bool,
) -> Result<OpOutput> {
    let mut node = resolve(txn, path)?;
    if node.id != inode {
        return Err(NsError::InvalidArgument(format!(
            "{path} is no longer inode {inode}, whose lease recovery began"
        ))
        .into());
    }
    if node.is_dir() {
        return Err(NsError::IsADirectory(path.to_string()).into());
    }
    let fence = recovery_holder(node.id);
    let Some(uc) = node.under_construction.as_mut() else {
        return Err(NsError::NotUnderConstruction(path.to_string()).into());
    };
    if uc.holder != fence {
        let live = !force && lease_live(txn, &uc.holder, ctx.now_ms)?;
        if uc.holder != holder || live {
            return Err(NsError::LeaseConflict {
                path: path.to_string(),
                holder: uc.holder.clone(),
            }
            .into());
        }
        release_lease_file(txn, holder, node.id)?;
        uc.holder = fence.clone();
    }
    grant_lease(txn, ctx, &fence, node.id)?;
    put_inode(txn, &node);
    Ok(OpOutput::Inode(node))
}

/// Extends `holder`'s lease (a holder with no lease record has nothing to renew).
pub(super) fn renew_lease<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    holder: &str,
) -> Result<OpOutput> {
    let now = ctx.now_ms;
    validate_holder(holder)?;
    if let Some(r) = lease_record(txn, holder)? {
        let record = LeaseRecord {
            expiry_ms: now.saturating_add(ctx.lease_ms),
            ..r
        };
        txn.put(Cf::Leases, keys::lease(holder), encode(&record));
    }
    Ok(OpOutput::Done)
}

/// Closes a file whose writer is gone, at the length the leader measured.
pub(super) fn recover_lease<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    last_group_length: &Option<(u64, GroupId)>,
) -> Result<OpOutput> {
    let now = ctx.now_ms;
    let mut node = resolve(txn, path)?;
    if node.is_dir() {
        return Err(NsError::IsADirectory(path.to_string()).into());
    }
    let Some(uc) = node.under_construction.take() else {
        return Err(NsError::NotUnderConstruction(path.to_string()).into());
    };
    // The open group starts where the file's closed groups end; it must be the one the
    // leader measured (a writer still alive may have moved on since).
    if let Some((_, measured)) = last_group_length {
        let open = blocks::of_file(txn, &node)?
            .pop()
            .filter(|g| g.length.is_none())
            .map(|g| g.id);
        if open != Some(*measured) {
            return Err(NsError::InvalidArgument(format!(
                "{path}: block group {measured} is no longer the file's open group"
            ))
            .into());
        }
    }
    let length = node
        .length
        .saturating_add(last_group_length.map_or(0, |(l, _)| l));
    blocks::recover_open(txn, &mut node, length, &path.to_string())?;
    release_lease_file(txn, &uc.holder, node.id)?;
    node.mtime_ms = now;
    put_inode(txn, &node);
    Ok(OpOutput::Inode(node))
}
