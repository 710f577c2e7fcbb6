//! Every mutation of the namespace, one function per operation (as TiKV's apply runs each
//! command in its own `exec_*`): [`dirs`] (mkdir, symlink, rename, delete, reclaim), [`files`] (create,
//! complete, add-block, append, lease renewal and recovery), [`attrs`] (permission, owner,
//! times, storage policy, extended attributes, reconstruction budgets). [`apply`] dispatches
//! and makes each operation all-or-nothing.

mod attrs;
mod dirs;
mod files;

use super::error::ApplyError;
use super::kv::{KvRead, Txn};
use super::ops::{ApplyCtx, Op, OpOutput};
use super::tree::Result;
use super::{admin_state, block_keys, freeze, mounts, snapshot, upgrade};

/// [`apply`] as `access`: the operation is first checked against the caller's permissions
/// (`permission::check_op`) in the state it applies to, and refused with `PermissionDenied`,
/// changing nothing, when they do not allow it. `None`: the active's own work (reclaim,
/// lease recovery), and entries written before callers were carried.
pub fn apply_as<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    access: Option<&super::permission::Access>,
    op: &Op,
) -> Result<OpOutput> {
    if let Some(access) = access {
        super::permission::check_op(txn, access, op)?;
    }
    freeze::check(txn, op, access.is_none_or(|a| a.superuser))?;
    apply_from(txn, ctx, op, access.map_or("", |a| a.machine.as_str()))
}

/// Applies one mutation. On a namespace error nothing it did is kept.
pub fn apply<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    op: &Op,
) -> Result<OpOutput> {
    apply_from(txn, ctx, op, "")
}

/// [`apply`] of an operation its caller sent from `machine` (recorded on the files it
/// opens for writing from format level 2 on; empty: not known).
fn apply_from<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    op: &Op,
    machine: &str,
) -> Result<OpOutput> {
    let savepoint = txn.savepoint();
    let result = op
        .written_paths()
        .into_iter()
        .try_for_each(snapshot::check_writable)
        .map_err(ApplyError::from)
        .and_then(|()| dispatch(txn, ctx, op, machine))
        .and_then(|out| {
            snapshot::preserve(txn, savepoint)?;
            Ok(out)
        });
    if matches!(result, Err(ApplyError::Ns(_))) {
        txn.rollback_to(savepoint);
    }
    result
}

fn dispatch<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    op: &Op,
    machine: &str,
) -> Result<OpOutput> {
    match op {
        Op::Mkdir {
            path,
            parents,
            permission,
            owner,
            group,
        } => dirs::mkdir(txn, ctx, path, parents, permission, owner, group),
        Op::Create {
            path,
            overwrite,
            create_parents,
            permission,
            owner,
            group,
            policy,
            holder,
            block_size,
        } => files::create(
            txn,
            ctx,
            files::NewFile {
                path,
                overwrite: *overwrite,
                create_parents: *create_parents,
                permission: *permission,
                owner,
                group: group.as_deref(),
                policy: policy.as_ref(),
                holder,
                block_size: *block_size,
                machine,
            },
        ),
        Op::Complete {
            path,
            holder,
            length,
        } => files::complete(txn, ctx, path, holder, length),
        Op::SetThrottle(change) => attrs::set_throttle(txn, change),
        Op::AddBlock {
            path,
            holder,
            file_length,
            targets,
        } => files::add_block(txn, ctx, path, holder, file_length, targets),
        Op::Append { path, holder } => files::append(txn, ctx, path, holder, machine),
        Op::Rename {
            src,
            dst,
            overwrite,
        } => dirs::rename(txn, ctx, src, dst, overwrite),
        Op::Delete { path, recursive } => dirs::delete(txn, ctx, path, recursive),
        Op::SetPermission { path, permission } => attrs::set_permission(txn, path, permission),
        Op::SetOwner { path, owner, group } => attrs::set_owner(txn, path, owner, group),
        Op::SetTimes {
            path,
            mtime_ms,
            atime_ms,
        } => attrs::set_times(txn, path, mtime_ms, atime_ms),
        Op::SetStoragePolicy { path, policy } => attrs::set_storage_policy(txn, path, policy),
        Op::RenewLease { holder } => files::renew_lease(txn, ctx, holder),
        Op::RecoverLease {
            path,
            last_group_length,
        } => files::recover_lease(txn, ctx, path, last_group_length),
        Op::Symlink {
            path,
            target,
            create_parents,
            owner,
        } => dirs::symlink(txn, ctx, path, target, create_parents, owner),
        Op::SetXattr {
            path,
            name,
            value,
            expect,
        } => attrs::set_xattr(txn, path, name, value, expect),
        Op::AppendXattr { path, name, value } => attrs::append_xattr(txn, path, name, value),
        Op::RemoveXattr { path, name } => attrs::remove_xattr(txn, path, name),
        Op::Reclaim { budget } => dirs::reclaim(txn, budget),
        Op::RollBlockKey { key } => {
            block_keys::roll(txn, ctx.now_ms, key)?;
            Ok(OpOutput::Done)
        }
        Op::BeginLeaseRecovery {
            path,
            inode,
            holder,
            force,
        } => files::begin_lease_recovery(txn, ctx, path, *inode, holder, *force),
        Op::MountAdd { at, to } => {
            mounts::add(txn, at, to)?;
            Ok(OpOutput::Done)
        }
        Op::MountRemove { at } => {
            mounts::remove(txn, at)?;
            Ok(OpOutput::Done)
        }
        Op::SetDefaultNameservice { nameservice } => {
            mounts::set_default(txn, nameservice.as_ref())?;
            Ok(OpOutput::Done)
        }
        Op::AllowSnapshot { path } => snapshot::allow(txn, path),
        Op::DisallowSnapshot { path } => snapshot::disallow(txn, path),
        Op::CreateSnapshot { path, name } => snapshot::create(txn, ctx, path, name.as_deref()),
        Op::DeleteSnapshot { path, name } => snapshot::delete(txn, path, name),
        Op::RenameSnapshot { path, from, to } => snapshot::rename(txn, path, from, to),
        Op::Freeze { path, frozen } => {
            freeze::set(txn, path, *frozen, ctx.now_ms)?;
            Ok(OpOutput::Done)
        }
        Op::MountMove { at, from, to } => {
            mounts::switch(txn, at, from, to)?;
            Ok(OpOutput::Done)
        }
        Op::SetAdminState { server, change } => {
            admin_state::set(txn, *server, *change, ctx.now_ms)?;
            Ok(OpOutput::Done)
        }
        Op::Upgrade(step) => {
            upgrade::apply(txn, *step, ctx.now_ms)?;
            Ok(OpOutput::Done)
        }
    }
}
