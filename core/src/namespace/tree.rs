//! The namespace operations themselves: path resolution, and every mutation and read of
//! DESIGN §2 as a function of the stored state (through [`KvRead`] / [`Txn`]) and the entry.
//! No clock, no randomness, no I/O besides the store: every replica computes the same result.

use super::blocks;
use super::error::{ApplyError, NsError, StoreError};
use super::inode::{
    FIRST_ALLOCATED_ID, Inode, InodeId, InodeKind, LeaseRecord, ROOT_ID, StoragePolicy,
    UnderConstruction, decode, encode,
};
use super::keys;
use super::kv::{Cf, KvRead, Txn};
use super::ops::{ApplyCtx, ContentSummary, Op, OpOutput, XattrExpect};
use super::path::NsPath;

/// Page size of the scans that walk a subtree.
const SCAN_PAGE: usize = 1024;
/// Largest extended-attribute value (HDFS's default `dfs.namenode.fs-limits.max-xattr-size`).
pub const MAX_XATTR_VALUE: usize = 16 * 1024;
/// Namespaces an extended-attribute name must start with (as in HDFS).
const XATTR_NAMESPACES: [&str; 5] = ["user.", "trusted.", "system.", "security.", "raw."];

type Result<T> = std::result::Result<T, ApplyError>;

// ---------------------------------------------------------------- reading

/// Loads an inode; the root exists even before anything was written.
pub fn load_inode<R: KvRead + ?Sized>(
    kv: &R,
    id: InodeId,
) -> std::result::Result<Option<Inode>, StoreError> {
    match kv.get(Cf::Inodes, &keys::inode(id))? {
        Some(bytes) => Ok(Some(decode("inodes", &bytes)?)),
        None if id == ROOT_ID => Ok(Some(Inode::root())),
        None => Ok(None),
    }
}

fn must_load<R: KvRead + ?Sized>(kv: &R, id: InodeId) -> Result<Inode> {
    load_inode(kv, id)?.ok_or_else(|| {
        ApplyError::Store(StoreError::Corrupt {
            cf: "inodes",
            reason: format!("dangling reference to inode {id}"),
        })
    })
}

fn lookup<R: KvRead + ?Sized>(kv: &R, parent: InodeId, name: &str) -> Result<Option<InodeId>> {
    match kv.get(Cf::Dentries, &keys::dentry(parent, name))? {
        Some(v) => Ok(Some(keys::u64_value(&v).ok_or_else(|| {
            ApplyError::Store(StoreError::Corrupt {
                cf: "dentries",
                reason: "bad child id".into(),
            })
        })?)),
        None => Ok(None),
    }
}

/// The inode at `path`: `NotFound` if any component is missing, `NotADirectory` if a
/// component before the last is not a directory.
pub fn resolve<R: KvRead + ?Sized>(kv: &R, path: &NsPath) -> Result<Inode> {
    let mut cur = must_load(kv, ROOT_ID)?;
    let mut walked = NsPath::root();
    for name in path.components() {
        if !cur.is_dir() {
            return Err(NsError::NotADirectory(walked.to_string()).into());
        }
        walked = walked.child(name);
        let Some(id) = lookup(kv, cur.id, name)? else {
            return Err(NsError::NotFound(path.to_string()).into());
        };
        cur = must_load(kv, id)?;
    }
    Ok(cur)
}

/// The directory that holds (or would hold) `path`: `ParentNotFound` if it does not exist,
/// `NotADirectory` if it or an ancestor is not a directory.
fn resolve_parent<R: KvRead + ?Sized>(kv: &R, path: &NsPath) -> Result<Inode> {
    let parent_path = path
        .parent()
        .ok_or_else(|| NsError::RootNotAllowed(path.to_string()))?;
    let parent = match resolve(kv, &parent_path) {
        Ok(p) => p,
        Err(ApplyError::Ns(NsError::NotFound(_))) => {
            return Err(NsError::ParentNotFound(path.to_string()).into());
        }
        Err(e) => return Err(e),
    };
    if !parent.is_dir() {
        return Err(NsError::NotADirectory(parent_path.to_string()).into());
    }
    Ok(parent)
}

/// `stat`.
pub fn stat<R: KvRead + ?Sized>(kv: &R, path: &NsPath) -> Result<Inode> {
    resolve(kv, path)
}

/// One page of a directory listing, in name order, strictly after `start_after`. A file
/// lists as itself. Returns the page and whether more follow.
pub fn list<R: KvRead + ?Sized>(
    kv: &R,
    path: &NsPath,
    start_after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Inode>, bool)> {
    let node = resolve(kv, path)?;
    if !node.is_dir() {
        return Ok((vec![node], false));
    }
    let limit = limit.max(1);
    let after = start_after.map(|s| keys::dentry(node.id, s));
    let page = kv.scan(
        Cf::Dentries,
        &keys::dentry_prefix(node.id),
        after.as_deref(),
        limit + 1,
    )?;
    let has_more = page.len() > limit;
    let mut out = Vec::with_capacity(page.len().min(limit));
    for (_, v) in page.into_iter().take(limit) {
        let id = keys::u64_value(&v).ok_or_else(|| {
            ApplyError::Store(StoreError::Corrupt {
                cf: "dentries",
                reason: "bad child id".into(),
            })
        })?;
        out.push(must_load(kv, id)?);
    }
    Ok((out, has_more))
}

/// Calls `f` for every direct child of directory `dir`, a page at a time.
fn for_each_child<R: KvRead + ?Sized>(
    kv: &R,
    dir: InodeId,
    mut f: impl FnMut(&str, InodeId) -> Result<()>,
) -> Result<()> {
    let prefix = keys::dentry_prefix(dir);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan(Cf::Dentries, &prefix, after.as_deref(), SCAN_PAGE)?;
        let done = page.len() < SCAN_PAGE;
        for (k, v) in &page {
            let name = keys::dentry_name(k).ok_or_else(|| {
                ApplyError::Store(StoreError::Corrupt {
                    cf: "dentries",
                    reason: "bad name".into(),
                })
            })?;
            let id = keys::u64_value(v).ok_or_else(|| {
                ApplyError::Store(StoreError::Corrupt {
                    cf: "dentries",
                    reason: "bad child id".into(),
                })
            })?;
            f(name, id)?;
        }
        if done {
            return Ok(());
        }
        after = page.last().map(|(k, _)| k.clone());
    }
}

/// `hdfs dfs -count`: directories (including `path` itself), files, symlinks and bytes.
pub fn content_summary<R: KvRead + ?Sized>(kv: &R, path: &NsPath) -> Result<ContentSummary> {
    let node = resolve(kv, path)?;
    let mut summary = ContentSummary::default();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        match n.kind {
            InodeKind::File => {
                summary.files += 1;
                summary.length = summary.length.saturating_add(n.length);
            }
            InodeKind::Symlink => summary.symlinks += 1,
            InodeKind::Directory => {
                summary.directories += 1;
                let mut children = Vec::new();
                for_each_child(kv, n.id, |_, id| {
                    children.push(id);
                    Ok(())
                })?;
                for id in children {
                    stack.push(must_load(kv, id)?);
                }
            }
        }
    }
    Ok(summary)
}

/// Calls `f` with the path and inode of every file at or below `path`, depth first (fsck).
pub fn walk_files<R: KvRead + ?Sized>(
    kv: &R,
    path: &NsPath,
    mut f: impl FnMut(&str, &Inode) -> Result<()>,
) -> Result<()> {
    let node = resolve(kv, path)?;
    let mut stack = vec![(path.to_string(), node)];
    while let Some((p, n)) = stack.pop() {
        match n.kind {
            InodeKind::File => f(&p, &n)?,
            InodeKind::Symlink => {}
            InodeKind::Directory => {
                let mut children = Vec::new();
                for_each_child(kv, n.id, |name, id| {
                    children.push((name.to_owned(), id));
                    Ok(())
                })?;
                for (name, id) in children.into_iter().rev() {
                    let child = if p == "/" {
                        format!("/{name}")
                    } else {
                        format!("{p}/{name}")
                    };
                    stack.push((child, must_load(kv, id)?));
                }
            }
        }
    }
    Ok(())
}

/// The path of inode `id`, from its parent links; `None` when it no longer exists.
pub fn path_of<R: KvRead + ?Sized>(kv: &R, id: InodeId) -> Result<Option<String>> {
    let mut names = Vec::new();
    let mut at = id;
    while at != ROOT_ID {
        let Some(node) = load_inode(kv, at)? else {
            return Ok(None);
        };
        names.push(node.name);
        at = node.parent;
        if names.len() > 10_000 {
            return Err(ApplyError::Store(StoreError::Corrupt {
                cf: "inodes",
                reason: format!("parent links of inode {id} form a cycle"),
            }));
        }
    }
    names.reverse();
    Ok(Some(format!("/{}", names.join("/"))))
}

/// The files of lease holders whose lease ran out before `now_ms` (lease recovery).
pub fn expired_leases<R: KvRead + ?Sized>(
    kv: &R,
    now_ms: u64,
) -> Result<Vec<(String, Vec<InodeId>)>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan(Cf::Leases, &[], after.as_deref(), SCAN_PAGE)?;
        for (k, v) in &page {
            if decode::<LeaseRecord>("leases", v)?.expiry_ms > now_ms {
                continue;
            }
            let holder = String::from_utf8_lossy(k).into_owned();
            let files = kv
                .scan(
                    Cf::LeaseFiles,
                    &keys::lease_files_prefix(&holder),
                    None,
                    SCAN_PAGE,
                )?
                .iter()
                .filter_map(|(k, _)| k.get(k.len().saturating_sub(8)..).and_then(keys::u64_value))
                .collect();
            out.push((holder, files));
        }
        if page.len() < SCAN_PAGE {
            return Ok(out);
        }
        after = page.last().map(|(k, _)| k.clone());
    }
}

/// Extended attributes of `path`: the named ones (each must exist), or all when `names` is
/// empty, in name order.
pub fn get_xattrs<R: KvRead + ?Sized>(
    kv: &R,
    path: &NsPath,
    names: &[String],
) -> Result<Vec<(String, Vec<u8>)>> {
    let node = resolve(kv, path)?;
    if names.is_empty() {
        let prefix = keys::xattr_prefix(node.id);
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = kv.scan(Cf::Xattrs, &prefix, after.as_deref(), SCAN_PAGE)?;
            let done = page.len() < SCAN_PAGE;
            after = page.last().map(|(k, _)| k.clone());
            for (k, v) in page {
                let name = std::str::from_utf8(&k[8..]).map_err(|_| {
                    ApplyError::Store(StoreError::Corrupt {
                        cf: "xattrs",
                        reason: "bad name".into(),
                    })
                })?;
                out.push((name.to_owned(), v));
            }
            if done {
                return Ok(out);
            }
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        match kv.get(Cf::Xattrs, &keys::xattr(node.id, name))? {
            Some(v) => out.push((name.clone(), v)),
            None => {
                return Err(NsError::XattrNotFound {
                    path: path.to_string(),
                    name: name.clone(),
                }
                .into());
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- writing

fn put_inode<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, inode: &Inode) {
    txn.put(Cf::Inodes, keys::inode(inode.id), encode(inode));
}

fn alloc_id<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>) -> Result<InodeId> {
    let next = match txn.get(Cf::Meta, keys::meta::NEXT_INODE)? {
        Some(v) => keys::u64_value(&v).ok_or_else(|| {
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
fn link<R: KvRead + ?Sized>(
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

fn unlink<R: KvRead + ?Sized>(
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
fn drop_inode_records<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, inode: &Inode) -> Result<()> {
    txn.delete(Cf::Inodes, keys::inode(inode.id));
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

/// Removes `inode` and everything below it, except its dentry in its parent. Returns the
/// number of inodes removed.
fn remove_subtree<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, inode: Inode) -> Result<u64> {
    let mut removed = 0u64;
    let mut stack = vec![inode];
    while let Some(n) = stack.pop() {
        if n.is_dir() {
            let mut children = Vec::new();
            for_each_child(txn, n.id, |name, id| {
                children.push((name.to_owned(), id));
                Ok(())
            })?;
            for (name, id) in children {
                txn.delete(Cf::Dentries, keys::dentry(n.id, &name));
                stack.push(must_load(txn, id)?);
            }
        }
        drop_inode_records(txn, &n)?;
        removed = removed.saturating_add(1);
    }
    Ok(removed)
}

fn lease_record<R: KvRead + ?Sized>(kv: &R, holder: &str) -> Result<Option<LeaseRecord>> {
    Ok(match kv.get(Cf::Leases, &keys::lease(holder))? {
        Some(v) => Some(decode::<LeaseRecord>("leases", &v)?),
        None => None,
    })
}

fn lease_live<R: KvRead + ?Sized>(kv: &R, holder: &str, now: u64) -> Result<bool> {
    Ok(lease_record(kv, holder)?.is_some_and(|r| r.expiry_ms > now))
}

/// Records that `holder` writes `file` (once, however often it is granted) and renews the
/// holder's lease.
fn grant_lease<R: KvRead + ?Sized>(
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
fn release_lease_file<R: KvRead + ?Sized>(
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

fn validate_name(what: &str, s: &str, max: usize) -> std::result::Result<(), NsError> {
    if s.is_empty() || s.len() > max || s.contains('\0') {
        return Err(NsError::InvalidArgument(format!(
            "{what} must be 1..={max} bytes without NUL"
        )));
    }
    Ok(())
}

fn validate_permission(p: u16) -> std::result::Result<(), NsError> {
    if p > 0o7777 {
        return Err(NsError::InvalidArgument(format!(
            "permission {p:o} is above 7777"
        )));
    }
    Ok(())
}

struct NewInode<'a> {
    kind: InodeKind,
    permission: u16,
    owner: &'a str,
    group: Option<&'a str>,
    policy: Option<StoragePolicy>,
    under_construction: Option<UnderConstruction>,
    symlink_target: Option<String>,
    /// Files: bytes per internal block.
    block_size: u64,
}

/// Refuses a policy the namespace does not offer (DESIGN §6): a well-formed name within the
/// caps parses anywhere, but files and directories take only the enabled ones.
fn check_enabled(policy: &StoragePolicy) -> Result<()> {
    if policy.is_enabled() {
        Ok(())
    } else {
        Err(NsError::InvalidArgument(format!("storage policy {policy} is not enabled")).into())
    }
}

/// Creates a child of `parent` (which the caller resolved and checked).
fn create_child<R: KvRead + ?Sized>(
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
fn mkdirs<R: KvRead + ?Sized>(
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
fn parent_for_create<R: KvRead + ?Sized>(
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
fn check_xattr(name: &str, value_len: usize) -> Result<()> {
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
fn written_by<R: KvRead + ?Sized>(txn: &Txn<'_, R>, path: &NsPath, holder: &str) -> Result<Inode> {
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

/// Applies one mutation. On a namespace error nothing it did is kept.
pub fn apply<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    op: &Op,
) -> Result<OpOutput> {
    let savepoint = txn.savepoint();
    let result = apply_inner(txn, ctx, op);
    if matches!(result, Err(ApplyError::Ns(_))) {
        txn.rollback_to(savepoint);
    }
    result
}

fn apply_inner<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    op: &Op,
) -> Result<OpOutput> {
    let now = ctx.now_ms;
    match op {
        Op::Mkdir {
            path,
            parents,
            permission,
            owner,
            group,
        } => {
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
        } => {
            validate_permission(*permission)?;
            validate_name("owner", owner, 256)?;
            validate_name("lease holder", holder, 1024)?;
            if path.is_root() {
                return Err(NsError::IsADirectory("/".into()).into());
            }
            let parent = parent_for_create(txn, ctx, path, *create_parents, owner)?;
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
                    && uc.holder != *holder
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
                permission: *permission,
                owner,
                group: group.as_deref(),
                policy: policy.clone(),
                under_construction: Some(UnderConstruction {
                    holder: holder.clone(),
                }),
                symlink_target: None,
                block_size: *block_size,
            };
            let inode = create_child(txn, ctx, &parent, name, new)?;
            grant_lease(txn, ctx, holder, inode.id)?;
            Ok(OpOutput::Inode(inode))
        }
        Op::Complete {
            path,
            holder,
            length,
        } => {
            let mut node = written_by(txn, path, holder)?;
            blocks::close_open(txn, &mut node, *length, &path.to_string())?;
            release_lease_file(txn, holder, node.id)?;
            node.under_construction = None;
            node.mtime_ms = now;
            put_inode(txn, &node);
            Ok(OpOutput::Inode(node))
        }
        Op::SetThrottle(change) => {
            super::throttle::apply(txn, change)?;
            Ok(OpOutput::Done)
        }
        Op::AddBlock {
            path,
            holder,
            file_length,
            targets,
        } => {
            let mut node = written_by(txn, path, holder)?;
            let group = blocks::add(txn, &mut node, *file_length, targets, &path.to_string())?;
            node.mtime_ms = now;
            put_inode(txn, &node);
            Ok(OpOutput::Group(node, group))
        }
        Op::Append { path, holder } => {
            validate_name("lease holder", holder, 1024)?;
            let mut node = resolve(txn, path)?;
            match node.kind {
                InodeKind::Directory => return Err(NsError::IsADirectory(path.to_string()).into()),
                InodeKind::Symlink => {
                    return Err(NsError::InvalidArgument(format!(
                        "{path}: cannot append to a symlink"
                    ))
                    .into());
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
                // The old writer's lease ran out: the new one takes the file over.
                release_lease_file(txn, &uc.holder, node.id)?;
            }
            node.under_construction = Some(UnderConstruction {
                holder: holder.clone(),
            });
            node.mtime_ms = now;
            put_inode(txn, &node);
            grant_lease(txn, ctx, holder, node.id)?;
            Ok(OpOutput::Inode(node))
        }
        Op::Rename {
            src,
            dst,
            overwrite,
        } => {
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
        Op::Delete { path, recursive } => {
            if path.is_root() {
                return Err(NsError::RootNotAllowed("/".into()).into());
            }
            let node = resolve(txn, path)?;
            if node.is_dir() && node.children > 0 && !recursive {
                return Err(NsError::DirectoryNotEmpty(path.to_string()).into());
            }
            let (parent, name) = (node.parent, node.name.clone());
            let removed = remove_subtree(txn, node)?;
            unlink(txn, parent, &name, now)?;
            Ok(OpOutput::Removed(removed))
        }
        Op::SetPermission { path, permission } => {
            validate_permission(*permission)?;
            let mut node = resolve(txn, path)?;
            node.permission = *permission;
            put_inode(txn, &node);
            Ok(OpOutput::Inode(node))
        }
        Op::SetOwner { path, owner, group } => {
            if owner.is_none() && group.is_none() {
                return Err(
                    NsError::InvalidArgument("set-owner needs an owner or a group".into()).into(),
                );
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
        Op::SetTimes {
            path,
            mtime_ms,
            atime_ms,
        } => {
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
        Op::SetStoragePolicy { path, policy } => {
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
        Op::RenewLease { holder } => {
            validate_name("lease holder", holder, 1024)?;
            if let Some(r) = lease_record(txn, holder)? {
                let record = LeaseRecord {
                    expiry_ms: now.saturating_add(ctx.lease_ms),
                    ..r
                };
                txn.put(Cf::Leases, keys::lease(holder), encode(&record));
            }
            Ok(OpOutput::Done)
        }
        Op::RecoverLease {
            path,
            last_group_length,
        } => {
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
            blocks::close_open(txn, &mut node, length, &path.to_string())?;
            release_lease_file(txn, &uc.holder, node.id)?;
            node.mtime_ms = now;
            put_inode(txn, &node);
            Ok(OpOutput::Inode(node))
        }
        Op::Symlink {
            path,
            target,
            create_parents,
            owner,
        } => {
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
                symlink_target: Some(target.clone()),
            };
            Ok(OpOutput::Inode(create_child(txn, ctx, &parent, name, new)?))
        }
        Op::SetXattr {
            path,
            name,
            value,
            expect,
        } => {
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
                    name: name.clone(),
                }
                .into());
            }
            txn.put(Cf::Xattrs, key, value.clone());
            Ok(OpOutput::Inode(node))
        }
        Op::AppendXattr { path, name, value } => {
            check_xattr(name, value.len())?;
            let node = resolve(txn, path)?;
            let key = keys::xattr(node.id, name);
            let mut joined = txn.get(Cf::Xattrs, &key)?.unwrap_or_default();
            joined.extend_from_slice(value);
            check_xattr(name, joined.len())?;
            txn.put(Cf::Xattrs, key, joined);
            Ok(OpOutput::Inode(node))
        }
        Op::RemoveXattr { path, name } => {
            let node = resolve(txn, path)?;
            let key = keys::xattr(node.id, name);
            if txn.get(Cf::Xattrs, &key)?.is_none() {
                return Err(NsError::XattrNotFound {
                    path: path.to_string(),
                    name: name.clone(),
                }
                .into());
            }
            txn.delete(Cf::Xattrs, key);
            Ok(OpOutput::Inode(node))
        }
    }
}
