//! The difference between two snapshots of a directory, or a snapshot and the live tree
//! (HDFS's `SnapshotDiffReport`): what was created (`+`), deleted (`-`), modified (`M`,
//! content or attributes) and renamed (`R`), with paths relative to the directory.
//!
//! A record that changed between the two was saved under an id in `[lo, hi)` (the older
//! snapshot's id up to the newer's, or to the end for the live tree; `cow`), so the diff
//! walks only those ids' entries in `snapshot_changes`: its cost grows with the changes, not
//! with the tree. Each record is judged once, at the first id it was saved under in the
//! range, by comparing its two versions (read through the two views):
//!
//! - a directory entry whose child changed: the old child, if still in the directory at the
//!   newer side, was renamed (`R old -> new`), else deleted; the new child, unless it was in
//!   the directory at the older side (the rename is reported from its old entry), was
//!   created. A created directory is reported alone, not what it holds (as HDFS).
//! - an inode, at the first of its records in the range: `M` if its attributes (not its
//!   place, child count or access time) or its extended attributes differ.
//!
//! The walk is paged: a page stops after `limit` entries of `snapshot_changes`, and the next
//! resumes after the last one (an opaque cursor).

use serde::{Deserialize, Serialize};

use super::cow::saved_from;
use super::{Anchored, SnapshotInfo, SnapshotView, by_name, corrupt, keys, must_info, refused};
use crate::id::{InodeId, SnapshotId};
use crate::namespace::error::NsError;
use crate::namespace::inode::{Inode, InodeKind, ROOT_ID};
use crate::namespace::kv::{Cf, KvRead};
use crate::namespace::path::NsPath;
use crate::namespace::tree::{Result, child_id, get_xattrs, load_inode, resolve};

/// What happened to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DiffKind {
    Created,
    Deleted,
    Modified,
    Renamed,
}

impl DiffKind {
    /// HDFS's one-character mark.
    pub fn mark(self) -> &'static str {
        match self {
            DiffKind::Created => "+",
            DiffKind::Deleted => "-",
            DiffKind::Modified => "M",
            DiffKind::Renamed => "R",
        }
    }
}

/// One line of a diff: paths relative to the directory (`""` is the directory itself).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DiffEntry {
    pub kind: DiffKind,
    /// The path at the older side (created: at the newer).
    pub path: String,
    /// A rename's path at the newer side.
    pub target: Option<String>,
    /// `M` of a file: its bytes changed (another length or other block groups), not only its
    /// attributes; a copy of an unchanged file's attributes reads no bytes.
    pub content: bool,
}

/// One page of a diff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffPage {
    pub entries: Vec<DiffEntry>,
    /// Where the next page starts; `None` when this was the last.
    pub cursor: Option<Vec<u8>>,
}

/// Longest cursor a caller may hand back (a change key: tag, two ids, a record tag, a
/// record key of at most an id and a 255-byte name).
pub const MAX_CURSOR: usize = 1 + 8 + 8 + 1 + 8 + 255;

/// One side of a diff: a snapshot, or the live tree, read from the directory down
/// ([`Anchored`]: `/` is the directory).
struct Side<'a> {
    kv: Box<dyn KvRead + 'a>,
    dir: InodeId,
}

impl<'a> Side<'a> {
    fn new<R: KvRead>(kv: &'a R, info: Option<SnapshotInfo>, dir: InodeId) -> Self {
        let kv: Box<dyn KvRead + 'a> = match info {
            Some(i) => Box::new(Anchored::new(SnapshotView::new(kv, i), dir)),
            None => Box::new(Anchored::new(kv, dir)),
        };
        Self { kv, dir }
    }

    /// Where inode `id` is below the directory on this side (`""`: the directory), found by
    /// its parent links and checked against the directory entries at each step: a snapshot
    /// keeps the entries below its directory, not the records of inodes that were elsewhere
    /// then (an inode renamed in since shows its new parent there).
    fn place(&self, id: InodeId) -> Result<Option<String>> {
        let mut names = Vec::new();
        let mut at = id;
        while at != self.dir {
            if at == ROOT_ID || names.len() > super::cow::MAX_WALK {
                return Ok(None);
            }
            let Some(node) = load_inode(&*self.kv, at)? else {
                return Ok(None);
            };
            if self.child(&crate::namespace::keys::dentry(node.parent, &node.name))? != Some(at) {
                return Ok(None);
            }
            names.push(node.name);
            at = node.parent;
        }
        names.reverse();
        Ok(Some(names.join("/")))
    }

    fn child(&self, key: &[u8]) -> Result<Option<InodeId>> {
        match self.kv.get(Cf::Dentries, key)? {
            Some(v) => Ok(Some(child_id(&v)?)),
            None => Ok(None),
        }
    }

    /// The path, in this side's anchored tree, of a place below the directory.
    fn path(relative: &str) -> Result<NsPath> {
        Ok(NsPath::parse(&format!("/{relative}"))?)
    }
}

/// A snapshot of `dir` by name; `None` for the live tree (`"."`, as HDFS writes it, or
/// empty).
fn side_info<R: KvRead + ?Sized>(
    kv: &R,
    dir: InodeId,
    path: &NsPath,
    name: &str,
) -> Result<Option<SnapshotInfo>> {
    if name.is_empty() || name == "." {
        return Ok(None);
    }
    match by_name(kv, dir, name)? {
        Some(id) => Ok(Some(must_info(kv, id)?)),
        None => Err(NsError::NotFound(format!("{path}/{}/{name}", super::RESERVED)).into()),
    }
}

/// Whether the attributes a copy keeps differ (not the place, the child count or the
/// access time).
fn attributes_differ(a: &Inode, b: &Inode) -> bool {
    (
        a.kind,
        a.permission,
        &a.owner,
        &a.group,
        a.mtime_ms,
        &a.policy,
        a.length,
        &a.under_construction,
        &a.symlink_target,
        a.block_size,
        a.block_groups,
    ) != (
        b.kind,
        b.permission,
        &b.owner,
        &b.group,
        b.mtime_ms,
        &b.policy,
        b.length,
        &b.under_construction,
        &b.symlink_target,
        b.block_size,
        b.block_groups,
    )
}

/// The block groups of `file`, in order.
fn group_ids(kv: &dyn KvRead, file: &Inode) -> Result<Vec<crate::id::GroupId>> {
    Ok(crate::namespace::blocks::of_file(kv, file)?
        .into_iter()
        .map(|g| g.id)
        .collect())
}

/// One page of the diff of directory `path` from snapshot `from` to `to` (a snapshot, or
/// `"."` for the live tree), after `cursor`.
pub fn diff<R: KvRead>(
    kv: &R,
    path: &NsPath,
    from: &str,
    to: &str,
    cursor: Option<&[u8]>,
    limit: usize,
) -> Result<DiffPage> {
    if cursor.is_some_and(|c| c.len() > MAX_CURSOR || c.first() != Some(&keys::CHANGE)) {
        return Err(NsError::InvalidArgument("not a snapshot diff cursor".into()).into());
    }
    let node = resolve(kv, path)?;
    if super::dir_record(kv, node.id)?.is_none() {
        return Err(refused(format!("{path}: not a snapshottable directory")));
    }
    let (a, b) = (
        side_info(kv, node.id, path, from)?,
        side_info(kv, node.id, path, to)?,
    );
    let (lo, hi) = match (&a, &b) {
        (Some(a), Some(b)) => (a.id.min(b.id), Some(a.id.max(b.id))),
        (Some(s), None) | (None, Some(s)) => (s.id, None),
        (None, None) => return Ok(DiffPage::default()),
    };
    let older = Side::new(kv, a, node.id);
    let newer = Side::new(kv, b, node.id);
    let walk = Walk {
        kv,
        lo,
        hi,
        older: &older,
        newer: &newer,
    };
    let start = keys::before_id(keys::CHANGE, lo);
    let after = match cursor {
        Some(c) if c > start.as_slice() => c.to_vec(),
        _ => start,
    };
    let page = kv.scan(
        Cf::SnapshotChanges,
        &[keys::CHANGE],
        Some(&after),
        limit.max(1),
    )?;
    let full = page.len() >= limit.max(1);
    let mut entries = Vec::new();
    let mut last = None;
    for (key, _) in page {
        let id = SnapshotId(keys::u64_at(&key, 1).ok_or_else(|| corrupt("bad change key"))?);
        if hi.is_some_and(|h| id >= h) {
            return Ok(DiffPage {
                entries,
                cursor: None,
            });
        }
        walk.judge(&key, id, &mut entries)?;
        last = Some(key);
    }
    Ok(DiffPage {
        entries,
        cursor: if full { last } else { None },
    })
}

struct Walk<'s, 'a, R> {
    kv: &'s R,
    lo: SnapshotId,
    hi: Option<SnapshotId>,
    older: &'s Side<'a>,
    newer: &'s Side<'a>,
}

impl<R: KvRead> Walk<'_, '_, R> {
    /// Judges one saved record (its change key), if this is its first save in the range.
    fn judge(&self, key: &[u8], id: SnapshotId, out: &mut Vec<DiffEntry>) -> Result<()> {
        let (owner, tag, record) =
            keys::parse_change(key).ok_or_else(|| corrupt("bad change key"))?;
        if self.first_of_owner(key, id, owner)? {
            self.modified(owner, out)?;
        }
        let first = saved_from(self.kv, tag, record, self.lo)?.map(|(at, _)| at);
        if tag == b'd' && first == Some(id) {
            self.entry(owner, record, out)?;
        }
        Ok(())
    }

    /// Whether `key` is the first change of `owner` in the range: the first of its changes
    /// under `id`, and `id` the first id in the range with any.
    fn first_of_owner(&self, key: &[u8], id: SnapshotId, owner: InodeId) -> Result<bool> {
        let first_here = self
            .kv
            .scan(Cf::SnapshotChanges, &keys::changes_of(id, owner), None, 1)?
            .first()
            .is_some_and(|(k, _)| k.as_slice() == key);
        if !first_here {
            return Ok(false);
        }
        let after = keys::owner(owner, SnapshotId(self.lo.0.saturating_sub(1)));
        let first_id = self
            .kv
            .scan(
                Cf::SnapshotChanges,
                &keys::owners_of(owner),
                (self.lo.0 > 0).then_some(after.as_slice()),
                1,
            )?
            .first()
            .and_then(|(k, _)| keys::u64_at(k, 9));
        Ok(first_id == Some(id.0))
    }

    /// `M` for `owner` if it is in the directory on both sides and its attributes or
    /// extended attributes differ.
    fn modified(&self, owner: InodeId, out: &mut Vec<DiffEntry>) -> Result<()> {
        let (Some(a), Some(b)) = (
            load_inode(&*self.older.kv, owner)?,
            load_inode(&*self.newer.kv, owner)?,
        ) else {
            return Ok(());
        };
        let (Some(pa), Some(pb)) = (self.older.place(owner)?, self.newer.place(owner)?) else {
            return Ok(());
        };
        let changed = attributes_differ(&a, &b)
            || get_xattrs(&*self.older.kv, &Side::path(&pa)?, &[])?
                != get_xattrs(&*self.newer.kv, &Side::path(&pb)?, &[])?;
        if changed {
            let content = a.kind == InodeKind::File
                && (a.length != b.length
                    || a.block_groups != b.block_groups
                    || group_ids(&*self.older.kv, &a)? != group_ids(&*self.newer.kv, &b)?);
            out.push(DiffEntry {
                kind: DiffKind::Modified,
                path: pb,
                target: None,
                content,
            });
        }
        Ok(())
    }

    /// The changes of one directory entry (`record`: parent id ++ name).
    fn entry(&self, parent: InodeId, record: &[u8], out: &mut Vec<DiffEntry>) -> Result<()> {
        let (was, is) = (self.older.child(record)?, self.newer.child(record)?);
        if was == is {
            return Ok(());
        }
        let name =
            crate::namespace::keys::dentry_name(record).ok_or_else(|| corrupt("bad entry name"))?;
        let join = |dir: Option<String>| {
            dir.map(|d| {
                if d.is_empty() {
                    name.to_owned()
                } else {
                    format!("{d}/{name}")
                }
            })
        };
        if let Some(old) = was
            && let Some(path) = join(self.older.place(parent)?)
        {
            out.push(match self.newer.place(old)? {
                Some(target) => DiffEntry {
                    kind: DiffKind::Renamed,
                    path,
                    target: Some(target),
                    content: false,
                },
                None => DiffEntry {
                    kind: DiffKind::Deleted,
                    path,
                    target: None,
                    content: false,
                },
            });
        }
        if let Some(new) = is
            && let Some(path) = join(self.newer.place(parent)?)
        {
            match self.older.place(new)? {
                None => out.push(DiffEntry {
                    kind: DiffKind::Created,
                    path,
                    target: None,
                    content: false,
                }),
                // Moved here: reported from its old entry, unless that entry is judged by
                // no walk of this range (its directory is newer than the range's start: a
                // diff from a later snapshot to an earlier one).
                Some(old) if !self.judged_in_range(new)? => out.push(DiffEntry {
                    kind: DiffKind::Renamed,
                    path: old,
                    target: Some(path),
                    content: false,
                }),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether inode `id`'s entry on the older side has a version saved in the range (so
    /// that the walk judges it).
    fn judged_in_range(&self, id: InodeId) -> Result<bool> {
        let Some(node) = load_inode(&*self.older.kv, id)? else {
            return Ok(false);
        };
        let key = crate::namespace::keys::dentry(node.parent, &node.name);
        Ok(saved_from(self.kv, b'd', &key, self.lo)?
            .is_some_and(|(at, _)| self.hi.is_none_or(|hi| at < hi)))
    }
}
