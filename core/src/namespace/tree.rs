//! Reading the namespace: path resolution and every read of DESIGN §2 (stat, list, content
//! summary, extended attributes, the files of expired leases) as functions of the stored state
//! (through [`KvRead`]); and [`apply`], every mutation (written in [`super::exec`], one
//! function per operation, over the shared write steps of [`super::write`]). No clock, no
//! randomness, no I/O besides the store: every replica computes the same result.

use super::error::{ApplyError, NsError, StoreError};
use super::inode::{Inode, InodeId, InodeKind, LeaseRecord, ROOT_ID, decode};
use super::keys;
use super::kv::{Cf, KvRead};
use super::ops::ContentSummary;
use super::path::NsPath;

/// Page size of the scans that walk a subtree.
pub(super) const SCAN_PAGE: usize = 1024;
/// Largest extended-attribute value (HDFS's default `dfs.namenode.fs-limits.max-xattr-size`).
pub const MAX_XATTR_VALUE: usize = 16 * 1024;
/// Namespaces an extended-attribute name must start with (as in HDFS).
pub(super) const XATTR_NAMESPACES: [&str; 5] =
    ["user.", "trusted.", "system.", "security.", "raw."];

pub(super) type Result<T> = std::result::Result<T, ApplyError>;

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

pub(super) fn must_load<R: KvRead + ?Sized>(kv: &R, id: InodeId) -> Result<Inode> {
    load_inode(kv, id)?.ok_or_else(|| {
        ApplyError::Store(StoreError::Corrupt {
            cf: "inodes",
            reason: format!("dangling reference to inode {id}"),
        })
    })
}

/// The child id a directory entry's value holds.
pub(super) fn child_id(value: &[u8]) -> Result<InodeId> {
    InodeId::from_be_slice(value).ok_or_else(|| {
        ApplyError::Store(StoreError::Corrupt {
            cf: "dentries",
            reason: "bad child id".into(),
        })
    })
}

pub(super) fn lookup<R: KvRead + ?Sized>(
    kv: &R,
    parent: InodeId,
    name: &str,
) -> Result<Option<InodeId>> {
    match kv.get(Cf::Dentries, &keys::dentry(parent, name))? {
        Some(v) => Ok(Some(child_id(&v)?)),
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
pub(super) fn resolve_parent<R: KvRead + ?Sized>(kv: &R, path: &NsPath) -> Result<Inode> {
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
        let id = InodeId::from_be_slice(&v).ok_or_else(|| {
            ApplyError::Store(StoreError::Corrupt {
                cf: "dentries",
                reason: "bad child id".into(),
            })
        })?;
        out.push(must_load(kv, id)?);
    }
    Ok((out, has_more))
}

/// `hdfs dfs -count`: directories (including `path` itself), files, symlinks and bytes.
/// As `access` when given (as HDFS does, every directory below must be readable and
/// searchable to it, or nothing is summed).
pub fn content_summary<R: KvRead + ?Sized>(
    kv: &R,
    path: &NsPath,
    access: Option<&super::permission::Access>,
) -> Result<ContentSummary> {
    let mut summary = ContentSummary::default();
    super::walk::walk(kv, path, None, usize::MAX, |p, n| {
        if let Some(a) = access {
            super::permission::may_list(a, n, p)?;
        }
        match n.kind {
            InodeKind::File => {
                summary.files += 1;
                summary.length = summary.length.saturating_add(n.length);
                let stored = n.policy.stored_bytes(n.length, n.block_size);
                summary.space_consumed = summary.space_consumed.saturating_add(stored);
            }
            InodeKind::Symlink => summary.symlinks += 1,
            InodeKind::Directory => summary.directories += 1,
        }
        Ok(())
    })?;
    Ok(summary)
}

/// Calls `f` with the path and inode of every file at or below `path`, depth first, in
/// bounded memory ([`super::walk`]).
pub fn walk_files<R: KvRead + ?Sized>(
    kv: &R,
    path: &NsPath,
    mut f: impl FnMut(&str, &Inode) -> Result<()>,
) -> Result<()> {
    super::walk::walk(kv, path, None, usize::MAX, |p, n| match n.kind {
        InodeKind::File => f(p, n),
        _ => Ok(()),
    })
    .map(drop)
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
                .filter_map(|(k, _)| {
                    k.get(k.len().saturating_sub(8)..)
                        .and_then(InodeId::from_be_slice)
                })
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

pub use super::exec::{apply, apply_as};
