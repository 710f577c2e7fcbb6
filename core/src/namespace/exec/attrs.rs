//! Operations on attributes: permission, owner, times, storage policy, extended attributes;
//! and the reconstruction budgets.

use crate::namespace::error::NsError;
use crate::namespace::inode::{InodeKind, StoragePolicy};
use crate::namespace::keys;
use crate::namespace::kv::{Cf, KvRead, Txn};
use crate::namespace::ops::{OpOutput, XattrExpect};
use crate::namespace::path::NsPath;
use crate::namespace::throttle::{self, ThrottleChange};
use crate::namespace::tree::{Result, resolve};
use crate::namespace::write::{
    check_enabled, check_xattr, put_inode, validate_name, validate_permission,
};

/// Sets the permission bits.
pub(super) fn set_permission<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    permission: &u16,
) -> Result<OpOutput> {
    validate_permission(*permission)?;
    let mut node = resolve(txn, path)?;
    node.permission = *permission;
    put_inode(txn, &node);
    Ok(OpOutput::Inode(node))
}

/// Sets the owner and/or the group.
pub(super) fn set_owner<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    owner: &Option<String>,
    group: &Option<String>,
) -> Result<OpOutput> {
    if owner.is_none() && group.is_none() {
        return Err(NsError::InvalidArgument("set-owner needs an owner or a group".into()).into());
    }
    if let Some(o) = owner {
        validate_name("owner", o, 256)?;
    }
    if let Some(g) = group {
        validate_name("group", g, 256)?;
    }
    let mut node = resolve(txn, path)?;
    if let Some(o) = owner {
        node.owner = o.clone();
    }
    if let Some(g) = group {
        node.group = g.clone();
    }
    put_inode(txn, &node);
    Ok(OpOutput::Inode(node))
}

/// Sets the modification and/or access time.
pub(super) fn set_times<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    mtime_ms: &Option<u64>,
    atime_ms: &Option<u64>,
) -> Result<OpOutput> {
    let mut node = resolve(txn, path)?;
    if let Some(m) = mtime_ms {
        node.mtime_ms = *m;
    }
    if let Some(a) = atime_ms {
        node.atime_ms = *a;
    }
    put_inode(txn, &node);
    Ok(OpOutput::Inode(node))
}

/// Sets the policy a file keeps or a directory passes to its new children.
pub(super) fn set_storage_policy<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    policy: &StoragePolicy,
) -> Result<OpOutput> {
    check_enabled(policy)?;
    let mut node = resolve(txn, path)?;
    match (node.kind, policy) {
        (InodeKind::Symlink, _) => {
            return Err(NsError::InvalidArgument(format!(
                "{path}: a symlink has no storage policy"
            ))
            .into());
        }
        (InodeKind::File, StoragePolicy::ErasureCoded { .. }) => {
            return Err(NsError::InvalidArgument(format!(
                "{path}: an erasure-coding policy is set on a directory, not a file"
            ))
            .into());
        }
        _ => {}
    }
    node.policy = policy.clone();
    put_inode(txn, &node);
    Ok(OpOutput::Inode(node))
}

/// Sets an extended attribute if it holds what `expect` says.
pub(super) fn set_xattr<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    name: &str,
    value: &[u8],
    expect: &XattrExpect,
) -> Result<OpOutput> {
    check_xattr(name, value.len())?;
    let node = resolve(txn, path)?;
    let key = keys::xattr(node.id, name);
    let current = txn.get(Cf::Xattrs, &key)?;
    let holds = match expect {
        XattrExpect::Any => true,
        XattrExpect::Absent => current.is_none(),
        XattrExpect::Value(v) => current.as_deref() == Some(v.as_slice()),
    };
    if !holds {
        return Err(NsError::XattrMismatch {
            path: path.to_string(),
            name: name.to_owned(),
        }
        .into());
    }
    txn.put(Cf::Xattrs, key, value.to_vec());
    Ok(OpOutput::Inode(node))
}

/// Appends to an extended attribute in one step.
pub(super) fn append_xattr<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    name: &str,
    value: &[u8],
) -> Result<OpOutput> {
    check_xattr(name, value.len())?;
    let node = resolve(txn, path)?;
    let key = keys::xattr(node.id, name);
    let mut joined = txn.get(Cf::Xattrs, &key)?.unwrap_or_default();
    joined.extend_from_slice(value);
    check_xattr(name, joined.len())?;
    txn.put(Cf::Xattrs, key, joined);
    Ok(OpOutput::Inode(node))
}

/// Removes an extended attribute.
pub(super) fn remove_xattr<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    name: &str,
) -> Result<OpOutput> {
    let node = resolve(txn, path)?;
    let key = keys::xattr(node.id, name);
    if txn.get(Cf::Xattrs, &key)?.is_none() {
        return Err(NsError::XattrNotFound {
            path: path.to_string(),
            name: name.to_owned(),
        }
        .into());
    }
    txn.delete(Cf::Xattrs, key);
    Ok(OpOutput::Inode(node))
}

/// Changes the reconstruction byte budgets.
pub(super) fn set_throttle<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    change: &ThrottleChange,
) -> Result<OpOutput> {
    throttle::apply(txn, change)?;
    Ok(OpOutput::Done)
}
