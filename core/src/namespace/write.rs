//! The steps mutations share: storing inodes and allocating their ids, linking and
//! unlinking directory entries, dropping an inode's records or a whole subtree, leases, the
//! validation of names and permissions, and creating children. Each operation in
//! [`super::exec`] is written in these steps.

use super::blocks;
use super::error::{ApplyError, NsError, StoreError};
use super::inode::{
    FIRST_ALLOCATED_ID, Inode, InodeId, InodeKind, LeaseRecord, ROOT_ID, StoragePolicy,
    UnderConstruction, decode, encode,
};
use super::keys;
use super::kv::{Cf, KvRead, Txn};
use super::ops::ApplyCtx;
use super::path::NsPath;
use super::tree::{
    MAX_XATTR_VALUE, Result, SCAN_PAGE, XATTR_NAMESPACES, lookup, must_load, resolve,
    resolve_parent,
};

pub(super) fn put_inode<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, inode: &Inode) {
    txn.put(Cf::Inodes, keys::inode(inode.id), encode(inode));
}

pub(super) fn alloc_id<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>) -> Result<InodeId> {
    let next = match txn.get(Cf::Meta, keys::meta::NEXT_INODE)? {
        Some(v) => InodeId::from_be_slice(&v).ok_or_else(|| {
            ApplyError::Store(StoreError::Corrupt {
                cf: "meta",
                reason: "bad next_inode".into(),
            })
        })?,
        None => FIRST_ALLOCATED_ID,
    };
    let after = next.checked_add(1).ok_or_else(|| {
        ApplyError::Store(StoreError::Corrupt {
            cf: "meta",
            reason: "inode ids exhausted".into(),
        })
    })?;
    txn.put(
        Cf::Meta,
        keys::meta::NEXT_INODE.to_vec(),
        after.to_be_bytes().to_vec(),
    );
    Ok(next)
}

/// Adds `name -> child` to directory `parent_id` and updates the parent's count and mtime.
pub(super) fn link<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    parent_id: InodeId,
    name: &str,
    child: InodeId,
    now: u64,
) -> Result<()> {
    let mut parent = must_load(txn, parent_id)?;
    parent.children = parent.children.saturating_add(1);
    parent.mtime_ms = now;
    put_inode(txn, &parent);
    txn.put(
        Cf::Dentries,
        keys::dentry(parent_id, name),
        child.to_be_bytes().to_vec(),
    );
    Ok(())
}

pub(super) fn unlink<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    parent_id: InodeId,
    name: &str,
    now: u64,
) -> Result<()> {
    let mut parent = must_load(txn, parent_id)?;
    parent.children = parent.children.saturating_sub(1);
    parent.mtime_ms = now;
    put_inode(txn, &parent);
    txn.delete(Cf::Dentries, keys::dentry(parent_id, name));
    Ok(())
}

/// Deletes one inode's own records (not its dentry in the parent, not its children).
pub(super) fn drop_inode_records<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    inode: &Inode,
) -> Result<()> {
    txn.delete(Cf::Inodes, keys::inode(inode.id));
    super::snapshot::forget(txn, inode)?;
    blocks::drop_all(txn, inode)?;
    if let Some(uc) = &inode.under_construction {
        release_lease_file(txn, &uc.holder, inode.id)?;
    }
    let prefix = keys::xattr_prefix(inode.id);
    loop {
        let page = txn.scan(Cf::Xattrs, &prefix, None, SCAN_PAGE)?;
        if page.is_empty() {
            return Ok(());
        }
        for (k, _) in page {
            txn.delete(Cf::Xattrs, k);
        }
    }
}

pub(super) fn lease_record<R: KvRead + ?Sized>(
    kv: &R,
    holder: &str,
) -> Result<Option<LeaseRecord>> {
    Ok(match kv.get(Cf::Leases, &keys::lease(holder))? {
        Some(v) => Some(decode::<LeaseRecord>("leases", &v)?),
        None => None,
    })
}

pub(super) fn lease_live<R: KvRead + ?Sized>(kv: &R, holder: &str, now: u64) -> Result<bool> {
    Ok(lease_record(kv, holder)?.is_some_and(|r| r.expiry_ms > now))
}

/// Records that `holder` writes `file` (once, however often it is granted) and renews the
/// holder's lease.
pub(super) fn grant_lease<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    holder: &str,
    file: InodeId,
) -> Result<()> {
    let mut files = lease_record(txn, holder)?.map_or(0, |r| r.files);
    let key = keys::lease_file(holder, file);
    if txn.get(Cf::LeaseFiles, &key)?.is_none() {
        files = files.saturating_add(1);
        txn.put(Cf::LeaseFiles, key, Vec::new());
    }
    let record = LeaseRecord {
        expiry_ms: ctx.now_ms.saturating_add(ctx.lease_ms),
        files,
    };
    txn.put(Cf::Leases, keys::lease(holder), encode(&record));
    Ok(())
}

/// Ends `holder`'s claim on `file` (closed, recovered, taken over or deleted). The holder's
/// lease record goes with its last file: nothing is left for it to protect, and lease
/// recovery does not visit idle clients forever.
pub(super) fn release_lease_file<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    holder: &str,
    file: InodeId,
) -> Result<()> {
    let key = keys::lease_file(holder, file);
    if txn.get(Cf::LeaseFiles, &key)?.is_none() {
        return Ok(());
    }
    txn.delete(Cf::LeaseFiles, key);
    match lease_record(txn, holder)? {
        Some(r) if r.files > 1 => txn.put(
            Cf::Leases,
            keys::lease(holder),
            encode(&LeaseRecord {
                files: r.files - 1,
                ..r
            }),
        ),
        _ => txn.delete(Cf::Leases, keys::lease(holder)),
    }
    Ok(())
}

/// The prefix of the lease holders lease recovery moves files to (`BeginLeaseRecovery`),
/// one per file ([`recovery_holder`]): its writer, cut off but alive, can no longer add a
/// group, complete the file or append to it while the recovery ends its streams and
/// restamps its blocks (HDFS's `internalReleaseLease` reassigns the lease to the NameNode
/// so). No client may use a name with this prefix.
pub const RECOVERY_PREFIX: &str = "raftfs:lease-recovery/";

/// The holder lease recovery moves file `inode` to: one per file, so that each recovery's
/// lease (the wait before a stuck one is tried again) is its own.
pub fn recovery_holder(inode: crate::id::InodeId) -> String {
    format!("{RECOVERY_PREFIX}{inode}")
}

/// A lease holder a client sent: a name, and not one of the recovery's.
pub(super) fn validate_holder(holder: &str) -> std::result::Result<(), NsError> {
    validate_name("lease holder", holder, 1024)?;
    if holder.starts_with(RECOVERY_PREFIX) {
        return Err(NsError::InvalidArgument(format!(
            "lease holder {holder:?} is reserved"
        )));
    }
    Ok(())
}

pub(super) fn validate_name(what: &str, s: &str, max: usize) -> std::result::Result<(), NsError> {
    if s.is_empty() || s.len() > max || s.contains('\0') {
        return Err(NsError::InvalidArgument(format!(
            "{what} must be 1..={max} bytes without NUL"
        )));
    }
    Ok(())
}

pub(super) fn validate_permission(p: u16) -> std::result::Result<(), NsError> {
    if p > 0o7777 {
        return Err(NsError::InvalidArgument(format!(
            "permission {p:o} is above 7777"
        )));
    }
    Ok(())
}

pub(super) struct NewInode<'a> {
    pub(super) kind: InodeKind,
    pub(super) permission: u16,
    pub(super) owner: &'a str,
    pub(super) group: Option<&'a str>,
    pub(super) policy: Option<StoragePolicy>,
    pub(super) under_construction: Option<UnderConstruction>,
    pub(super) symlink_target: Option<String>,
    /// Files: bytes per internal block.
    pub(super) block_size: u64,
}

/// Refuses a policy the namespace does not offer (DESIGN §6): a well-formed name within the
/// caps parses anywhere, but files and directories take only the enabled ones.
pub(super) fn check_enabled(policy: &StoragePolicy) -> Result<()> {
    if policy.is_enabled() {
        Ok(())
    } else {
        Err(NsError::InvalidArgument(format!("storage policy {policy} is not enabled")).into())
    }
}

/// Creates a child of `parent` (which the caller resolved and checked).
pub(super) fn create_child<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    parent: &Inode,
    name: &str,
    new: NewInode<'_>,
) -> Result<Inode> {
    if let Some(policy) = &new.policy {
        check_enabled(policy)?;
    }
    let policy = new.policy.unwrap_or_else(|| parent.policy.clone());
    if new.kind == InodeKind::File {
        policy
            .validate_block_size(new.block_size)
            .map_err(NsError::InvalidArgument)?;
    }
    let id = alloc_id(txn)?;
    let inode = Inode {
        id,
        parent: parent.id,
        name: name.to_owned(),
        kind: new.kind,
        permission: new.permission,
        owner: new.owner.to_owned(),
        group: new.group.unwrap_or(&parent.group).to_owned(),
        mtime_ms: ctx.now_ms,
        atime_ms: ctx.now_ms,
        policy,
        length: 0,
        under_construction: new.under_construction,
        symlink_target: new.symlink_target,
        children: 0,
        block_size: if new.kind == InodeKind::File {
            new.block_size
        } else {
            0
        },
        block_groups: 0,
    };
    put_inode(txn, &inode);
    link(txn, parent.id, name, id, ctx.now_ms)?;
    Ok(inode)
}

/// `mkdir -p` of `path`: creates what is missing, returns the directory.
pub(super) fn mkdirs<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    permission: u16,
    owner: &str,
    group: Option<&str>,
) -> Result<Inode> {
    let mut cur = must_load(txn, ROOT_ID)?;
    let mut walked = NsPath::root();
    let last = path.components().len();
    for (i, name) in path.components().iter().enumerate() {
        walked = walked.child(name);
        cur = match lookup(txn, cur.id, name)? {
            Some(id) => {
                let node = must_load(txn, id)?;
                if !node.is_dir() {
                    return Err(if i + 1 == last {
                        NsError::AlreadyExists(walked.to_string())
                    } else {
                        NsError::NotADirectory(walked.to_string())
                    }
                    .into());
                }
                node
            }
            None => {
                let new = NewInode {
                    kind: InodeKind::Directory,
                    permission,
                    owner,
                    group,
                    policy: None,
                    under_construction: None,
                    symlink_target: None,
                    block_size: 0,
                };
                create_child(txn, ctx, &cur, name, new)?
            }
        };
    }
    Ok(cur)
}

/// The directory a new entry at `path` goes into, made first when `create_parents`.
pub(super) fn parent_for_create<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    create_parents: bool,
    owner: &str,
) -> Result<Inode> {
    let parent_path = path
        .parent()
        .ok_or_else(|| NsError::RootNotAllowed(path.to_string()))?;
    if create_parents {
        match mkdirs(txn, ctx, &parent_path, 0o755, owner, None) {
            Err(ApplyError::Ns(NsError::AlreadyExists(p))) => Err(NsError::NotADirectory(p).into()),
            other => other,
        }
    } else {
        resolve_parent(txn, path)
    }
}

/// An attribute's name must be in a known namespace (`user.`, ...), its value within
/// [`MAX_XATTR_VALUE`].
pub(super) fn check_xattr(name: &str, value_len: usize) -> Result<()> {
    validate_name("xattr name", name, 255)?;
    if !XATTR_NAMESPACES.iter().any(|ns| name.starts_with(ns)) {
        return Err(NsError::InvalidArgument(format!(
            "xattr name {name:?} must start with one of {XATTR_NAMESPACES:?}"
        ))
        .into());
    }
    if value_len > MAX_XATTR_VALUE {
        return Err(
            NsError::InvalidArgument(format!("xattr value above {MAX_XATTR_VALUE} bytes")).into(),
        );
    }
    Ok(())
}

/// The file at `path`, which `holder` must be writing.
pub(super) fn written_by<R: KvRead + ?Sized>(
    txn: &Txn<'_, R>,
    path: &NsPath,
    holder: &str,
) -> Result<Inode> {
    validate_holder(holder)?;
    let node = resolve(txn, path)?;
    match node.kind {
        InodeKind::Directory => return Err(NsError::IsADirectory(path.to_string()).into()),
        InodeKind::Symlink => {
            return Err(NsError::NotUnderConstruction(path.to_string()).into());
        }
        InodeKind::File => {}
    }
    match &node.under_construction {
        None => Err(NsError::NotUnderConstruction(path.to_string()).into()),
        Some(uc) if uc.holder != holder => Err(NsError::LeaseConflict {
            path: path.to_string(),
            holder: uc.holder.clone(),
        }
        .into()),
        Some(_) => Ok(node),
    }
}
