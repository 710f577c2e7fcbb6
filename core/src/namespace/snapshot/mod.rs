//! Namespace snapshots (DESIGN §13), as HDFS's: a directory is made snapshottable
//! (`allow`), a snapshot of it is taken in one journal entry that copies nothing
//! (`create`), and `DIR/.snapshot/NAME/...` reads the subtree as it was.
//!
//! - **Copy on first write** ([`cow`]): after every operation, each namespace record it
//!   changed (an inode, a directory entry, an extended attribute, a file's group index) whose
//!   inode is *protected* (below a directory that has snapshots, or in a subtree that left
//!   one while they existed: an [escape mark](keys::mark)) is saved as it was before, under
//!   the newest snapshot, unless a version is saved already for that snapshot or a later
//!   one. Reading snapshot `s` takes, per record, the version saved under the smallest id
//!   `>= s`, else the live record ([`SnapshotView`]). Ids are global and only grow, so this
//!   holds whatever directory took which snapshot and wherever a record moved: the first
//!   change of a record after `s` saves it under the newest snapshot then, which is `>= s`,
//!   and no save can fall between (see `cow`).
//! - **Blocks**: a block group a protected file drops (delete, overwrite) is kept in
//!   `block_groups` (so the redundancy scan keeps it whole) and listed as *retained* under the
//!   newest snapshot; the garbage sweep sees it live.
//! - **Deleting a snapshot** removes its name at once and queues its id; the active's
//!   reclaim worker then collects, in bounded steps ([`gc`]), the saved versions and retained
//!   groups no remaining snapshot needs.
//! - **Diff** ([`diff`]) walks only the versions saved under the ids between two snapshots:
//!   its cost grows with the changes, not with the tree.

mod cow;
pub mod diff;

mod gc;
mod view;

use serde::{Deserialize, Serialize};

use super::error::{ApplyError, NsError, StoreError};
use super::inode::{Inode, InodeId, ROOT_ID, decode, encode};
use super::kv::{Cf, KvRead, Txn};
use super::ops::{ApplyCtx, OpOutput};
use super::path::NsPath;
use super::tree::{Result, SCAN_PAGE, load_inode, path_of, resolve};
use crate::format::{self, FormatError, Schema};
use crate::id::{GroupId, SnapshotId};

pub(super) use cow::preserve;
pub use diff::{DiffEntry, DiffKind, DiffPage, diff};
pub(super) use gc::collect;
pub use gc::pending as collection_pending;
pub use view::{Anchored, SnapshotView};

/// The path component that reaches a directory's snapshots; no entry may be named so.
pub const RESERVED: &str = ".snapshot";
/// Most snapshots one directory may have (HDFS's `dfs.namenode.snapshot.max.limit`).
pub const MAX_PER_DIR: u32 = 65_536;
/// Most snapshottable directories (each `allow` checks the others for nesting).
pub const MAX_SNAPSHOTTABLE: usize = 10_000;

/// One snapshot: which directory, its name, when, and the id counters then (what was
/// allocated after it did not exist in it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: SnapshotId,
    pub dir: InodeId,
    pub name: String,
    pub created_ms: u64,
    /// Inodes numbered from here were created after the snapshot.
    pub next_inode: InodeId,
    /// Block groups numbered from here were allocated after the snapshot.
    pub next_group: GroupId,
}

/// A snapshottable directory: how many snapshots it has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDir {
    pub snapshots: u32,
}

/// Bytes written as one byte string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bytes(#[serde(with = "crate::format::raw_bytes")] pub Vec<u8>);

/// A record as it was at a snapshot (`None`: it did not exist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub value: Option<Bytes>,
}

/// How far the collection of a deleted snapshot went (`gc`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    /// 0: saved versions; 1: retained block groups.
    pub phase: u8,
    /// The last key handled in the phase's key space.
    pub after: Option<Bytes>,
}

macro_rules! v1_record {
    ($ty:ty, $name:literal) => {
        impl Schema for $ty {
            type Value = Self;
            const RECORD: &'static str = $name;
            const CURRENT: u16 = 1;

            fn decode_body(version: u16, bytes: &[u8]) -> std::result::Result<Self, FormatError> {
                match version {
                    1 => format::body(Self::RECORD, bytes),
                    v => Err(format::unknown_version::<Self>(v)),
                }
            }
        }
    };
}

v1_record!(SnapshotInfo, "snapshot info");
v1_record!(SnapshotDir, "snapshottable directory");
v1_record!(Saved, "saved record");
v1_record!(Collection, "snapshot collection");

/// Keys of the snapshot column families. In `snapshots` each family has a one-byte tag:
/// `d` dir -> [`SnapshotDir`]; `n` dir ++ name -> id; `i` id -> [`SnapshotInfo`]; `j` !id
/// -> () (newest first); `m` inode -> id (escape mark); `g` id -> [`Collection`] (deleted,
/// being collected); `r` id ++ group -> () (retained group). In `snapshot_records`:
/// record tag ++ record key ++ 0 ++ id -> [`Saved`] (names hold no NUL, so `key ++ 0` is
/// unambiguous, and a record's versions sort by id). In `snapshot_changes`: `c` id ++
/// owner ++ record tag ++ record key -> () (what each snapshot id saved), `o` owner ++ id
/// -> () (which ids saved records of an inode).
pub mod keys {
    use crate::id::{GroupId, InodeId, SnapshotId};
    use crate::namespace::kv::Cf;

    pub const DIR: u8 = b'd';
    pub const NAME: u8 = b'n';
    pub const INFO: u8 = b'i';
    pub const NEWEST: u8 = b'j';
    pub const MARK: u8 = b'm';
    pub const DELETED: u8 = b'g';
    pub const RETAINED: u8 = b'r';
    pub const CHANGE: u8 = b'c';
    pub const OWNER: u8 = b'o';

    fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let mut k = vec![tag];
        for p in parts {
            k.extend_from_slice(p);
        }
        k
    }

    pub fn dir(id: InodeId) -> Vec<u8> {
        tagged(DIR, &[&id.to_be_bytes()])
    }
    pub fn name(dir: InodeId, name: &str) -> Vec<u8> {
        tagged(NAME, &[&dir.to_be_bytes(), name.as_bytes()])
    }
    pub fn names_of(dir: InodeId) -> Vec<u8> {
        tagged(NAME, &[&dir.to_be_bytes()])
    }
    pub fn info(id: SnapshotId) -> Vec<u8> {
        tagged(INFO, &[&id.to_be_bytes()])
    }
    pub fn newest(id: SnapshotId) -> Vec<u8> {
        tagged(NEWEST, &[&(!id.0).to_be_bytes()])
    }
    pub fn mark(id: InodeId) -> Vec<u8> {
        tagged(MARK, &[&id.to_be_bytes()])
    }
    pub fn deleted(id: SnapshotId) -> Vec<u8> {
        tagged(DELETED, &[&id.to_be_bytes()])
    }
    pub fn retained(id: SnapshotId, group: GroupId) -> Vec<u8> {
        tagged(RETAINED, &[&id.to_be_bytes(), &group.to_be_bytes()])
    }
    /// Every key of family `tag` (in `snapshots` or `snapshot_changes`) whose id is below
    /// `id` sorts before this one: where a scan for ids `>= id` starts (exclusive).
    pub fn before_id(tag: u8, id: SnapshotId) -> Vec<u8> {
        tagged(tag, &[&id.0.saturating_sub(1).to_be_bytes(), &[0xff]])
    }

    /// The tag of a column family whose records snapshots version.
    pub fn record_tag(cf: Cf) -> Option<u8> {
        match cf {
            Cf::Inodes => Some(b'i'),
            Cf::Dentries => Some(b'd'),
            Cf::Xattrs => Some(b'x'),
            Cf::FileBlocks => Some(b'b'),
            _ => None,
        }
    }
    /// The column family of a record tag.
    pub fn tag_cf(tag: u8) -> Option<Cf> {
        match tag {
            b'i' => Some(Cf::Inodes),
            b'd' => Some(Cf::Dentries),
            b'x' => Some(Cf::Xattrs),
            b'b' => Some(Cf::FileBlocks),
            _ => None,
        }
    }
    /// All saved versions of one record.
    pub fn versions(tag: u8, key: &[u8]) -> Vec<u8> {
        let mut k = vec![tag];
        k.extend_from_slice(key);
        k.push(0);
        k
    }
    /// The version of a record saved under `id`.
    pub fn version(tag: u8, key: &[u8], id: SnapshotId) -> Vec<u8> {
        let mut k = versions(tag, key);
        k.extend_from_slice(&id.to_be_bytes());
        k
    }
    /// What snapshot `id` saved of record (`tag`, `key`) owned by inode `owner`.
    pub fn change(id: SnapshotId, owner: InodeId, tag: u8, key: &[u8]) -> Vec<u8> {
        tagged(
            CHANGE,
            &[&id.to_be_bytes(), &owner.to_be_bytes(), &[tag], key],
        )
    }
    /// The owner, record tag and record key of a [`change`] key.
    pub fn parse_change(key: &[u8]) -> Option<(InodeId, u8, &[u8])> {
        let owner = InodeId(u64_at(key, 9)?);
        match key.get(17..)? {
            [tag, record @ ..] => Some((owner, *tag, record)),
            [] => None,
        }
    }
    pub fn changes_of(id: SnapshotId, owner: InodeId) -> Vec<u8> {
        tagged(CHANGE, &[&id.to_be_bytes(), &owner.to_be_bytes()])
    }
    pub fn owner(owner: InodeId, id: SnapshotId) -> Vec<u8> {
        tagged(OWNER, &[&owner.to_be_bytes(), &id.to_be_bytes()])
    }
    pub fn owners_of(owner: InodeId) -> Vec<u8> {
        tagged(OWNER, &[&owner.to_be_bytes()])
    }

    /// The 8-byte id at `at` of `key`.
    pub fn u64_at(key: &[u8], at: usize) -> Option<u64> {
        Some(u64::from_be_bytes(key.get(at..at + 8)?.try_into().ok()?))
    }
}

fn corrupt(reason: impl Into<String>) -> ApplyError {
    ApplyError::Store(StoreError::Corrupt {
        cf: "snapshots",
        reason: reason.into(),
    })
}

fn refused(reason: impl Into<String>) -> ApplyError {
    NsError::Snapshot(reason.into()).into()
}

// ---------------------------------------------------------------- reading the records

/// The snapshottable-directory record of `dir`, if it is one.
pub fn dir_record<R: KvRead + ?Sized>(kv: &R, dir: InodeId) -> Result<Option<SnapshotDir>> {
    Ok(match kv.get(Cf::Snapshots, &keys::dir(dir))? {
        Some(v) => Some(decode::<SnapshotDir>("snapshots", &v)?),
        None => None,
    })
}

/// Snapshot `id`, if it exists (not deleted).
pub fn info<R: KvRead + ?Sized>(kv: &R, id: SnapshotId) -> Result<Option<SnapshotInfo>> {
    Ok(match kv.get(Cf::Snapshots, &keys::info(id))? {
        Some(v) => Some(decode::<SnapshotInfo>("snapshots", &v)?),
        None => None,
    })
}

fn must_info<R: KvRead + ?Sized>(kv: &R, id: SnapshotId) -> Result<SnapshotInfo> {
    info(kv, id)?.ok_or_else(|| corrupt(format!("snapshot {id} is named but has no record")))
}

/// The id of snapshot `name` of directory `dir`.
pub fn by_name<R: KvRead + ?Sized>(kv: &R, dir: InodeId, name: &str) -> Result<Option<SnapshotId>> {
    match kv.get(Cf::Snapshots, &keys::name(dir, name))? {
        Some(v) => SnapshotId::from_be_slice(&v)
            .map(Some)
            .ok_or_else(|| corrupt("bad snapshot id")),
        None => Ok(None),
    }
}

/// The newest existing snapshot, of any directory.
pub fn newest<R: KvRead + ?Sized>(kv: &R) -> Result<Option<SnapshotInfo>> {
    older_than(kv, SnapshotId(u64::MAX))
}

/// The newest existing snapshot older than `id`.
pub fn older_than<R: KvRead + ?Sized>(kv: &R, id: SnapshotId) -> Result<Option<SnapshotInfo>> {
    let after = keys::newest(id);
    match kv
        .scan(Cf::Snapshots, &[keys::NEWEST], Some(&after), 1)?
        .first()
    {
        Some((k, _)) => {
            let inverted = keys::u64_at(k, 1).ok_or_else(|| corrupt("bad newest key"))?;
            Ok(Some(must_info(kv, SnapshotId(!inverted))?))
        }
        None => Ok(None),
    }
}

/// The oldest existing snapshot newer than `id` (`SnapshotId(0)`: the oldest of all).
pub fn newer_than<R: KvRead + ?Sized>(kv: &R, id: SnapshotId) -> Result<Option<SnapshotInfo>> {
    let after = keys::info(id);
    match kv
        .scan(Cf::Snapshots, &[keys::INFO], Some(&after), 1)?
        .first()
    {
        Some((_, v)) => Ok(Some(decode::<SnapshotInfo>("snapshots", v)?)),
        None => Ok(None),
    }
}

/// The snapshots of directory `dir`, oldest first.
pub fn of_dir<R: KvRead + ?Sized>(kv: &R, dir: InodeId) -> Result<Vec<SnapshotInfo>> {
    let prefix = keys::names_of(dir);
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan(Cf::Snapshots, &prefix, after.as_deref(), SCAN_PAGE)?;
        let done = page.len() < SCAN_PAGE;
        after = page.last().map(|(k, _)| k.clone());
        for (_, v) in page {
            let id = SnapshotId::from_be_slice(&v).ok_or_else(|| corrupt("bad snapshot id"))?;
            out.push(must_info(kv, id)?);
        }
        if done {
            out.sort_by_key(|i| i.id);
            return Ok(out);
        }
    }
}

/// Every snapshottable directory, by inode id, with its record.
pub fn snapshottable<R: KvRead + ?Sized>(kv: &R) -> Result<Vec<(InodeId, SnapshotDir)>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan(Cf::Snapshots, &[keys::DIR], after.as_deref(), SCAN_PAGE)?;
        let done = page.len() < SCAN_PAGE;
        after = page.last().map(|(k, _)| k.clone());
        for (k, v) in page {
            let id = keys::u64_at(&k, 1).ok_or_else(|| corrupt("bad directory key"))?;
            out.push((InodeId(id), decode::<SnapshotDir>("snapshots", &v)?));
        }
        if done {
            return Ok(out);
        }
    }
}

/// Whether `ancestor` is `id` or one of its ancestors (by parent links; a detached inode
/// has none past the reclaim directory).
fn is_ancestor<R: KvRead + ?Sized>(kv: &R, ancestor: InodeId, id: InodeId) -> Result<bool> {
    let mut at = id;
    for _ in 0..=cow::MAX_WALK {
        if at == ancestor {
            return Ok(true);
        }
        if at == ROOT_ID {
            return Ok(false);
        }
        match load_inode(kv, at)? {
            Some(n) => at = n.parent,
            None => return Ok(false),
        }
    }
    Err(cow::too_deep(id))
}

// ---------------------------------------------------------------- names

/// A snapshot name: a path component, and not the reserved one.
fn check_name(name: &str) -> Result<()> {
    NsPath::parse(&format!("/{name}")).and_then(|p| {
        if p.components() == [name] {
            Ok(())
        } else {
            Err(NsError::InvalidArgument(format!(
                "snapshot name {name:?} is not one path component"
            )))
        }
    })?;
    if name == RESERVED {
        return Err(refused(format!("{RESERVED:?} is a reserved name")));
    }
    Ok(())
}

/// HDFS's default snapshot name, `sYYYYMMDD-HHMMSS.mmm`, from the entry's time (UTC).
pub fn default_name(now_ms: u64) -> String {
    let secs = now_ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "s{y:04}{m:02}{d:02}-{:02}{:02}{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now_ms % 1000
    )
}

/// Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Refuses an operation on a path inside a snapshot, or one that would name an entry
/// [`RESERVED`]: snapshots are read-only and `.snapshot` reaches them.
pub fn check_writable(path: &NsPath) -> std::result::Result<(), NsError> {
    if path.components().iter().any(|c| c == RESERVED) {
        return Err(NsError::Snapshot(format!(
            "{path}: {RESERVED} is reserved: snapshots are read-only"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- operations

fn snapshottable_dir<R: KvRead + ?Sized>(kv: &R, path: &NsPath) -> Result<(Inode, SnapshotDir)> {
    let node = resolve(kv, path)?;
    if !node.is_dir() {
        return Err(NsError::NotADirectory(path.to_string()).into());
    }
    match dir_record(kv, node.id)? {
        Some(d) => Ok((node, d)),
        None => Err(refused(format!("{path}: not a snapshottable directory"))),
    }
}

fn snapshot_path(path: &NsPath, name: &str) -> String {
    path.child(RESERVED).child(name).to_string()
}

/// The directory as the root of snapshot `info` shows it: named after the snapshot, with
/// the snapshot's time.
pub fn root_inode(dir: &Inode, info: &SnapshotInfo) -> Inode {
    Inode {
        name: info.name.clone(),
        mtime_ms: info.created_ms,
        ..dir.clone()
    }
}

/// `allow-snapshot`: makes `path` snapshottable. Nested snapshottable directories are
/// refused, as HDFS does by default.
pub(super) fn allow<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, path: &NsPath) -> Result<OpOutput> {
    let node = resolve(txn, path)?;
    if !node.is_dir() {
        return Err(NsError::NotADirectory(path.to_string()).into());
    }
    if dir_record(txn, node.id)?.is_some() {
        return Ok(OpOutput::Inode(node));
    }
    let others = snapshottable(txn)?;
    if others.len() >= MAX_SNAPSHOTTABLE {
        return Err(refused(format!(
            "{path}: already {MAX_SNAPSHOTTABLE} snapshottable directories"
        )));
    }
    for (other, _) in others {
        if is_ancestor(txn, other, node.id)? || is_ancestor(txn, node.id, other)? {
            let at = path_of(txn, other)?.unwrap_or_else(|| format!("inode {other}"));
            return Err(refused(format!(
                "{path}: nested snapshottable directories are not allowed ({at} is one)"
            )));
        }
    }
    txn.put(
        Cf::Snapshots,
        keys::dir(node.id),
        encode(&SnapshotDir::default()),
    );
    Ok(OpOutput::Inode(node))
}

/// `disallow-snapshot`: refused while the directory has snapshots.
pub(super) fn disallow<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
) -> Result<OpOutput> {
    let node = resolve(txn, path)?;
    if let Some(d) = dir_record(txn, node.id)? {
        if d.snapshots > 0 {
            return Err(refused(format!(
                "{path}: has {} snapshots; delete them first",
                d.snapshots
            )));
        }
        txn.delete(Cf::Snapshots, keys::dir(node.id));
    }
    Ok(OpOutput::Inode(node))
}

fn alloc_id<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>) -> Result<SnapshotId> {
    let next = match txn.get(Cf::Meta, super::keys::meta::NEXT_SNAPSHOT)? {
        Some(v) => SnapshotId::from_be_slice(&v).ok_or_else(|| corrupt("bad next_snapshot"))?,
        None => SnapshotId(1),
    };
    let after = next
        .checked_add(1)
        .ok_or_else(|| corrupt("snapshot ids exhausted"))?;
    txn.put(
        Cf::Meta,
        super::keys::meta::NEXT_SNAPSHOT.to_vec(),
        after.to_be_bytes().to_vec(),
    );
    Ok(next)
}

fn counter<R: KvRead + ?Sized>(kv: &R, key: &[u8], first: u64) -> Result<u64> {
    match kv.get(Cf::Meta, key)? {
        Some(v) => super::keys::u64_value(&v).ok_or_else(|| corrupt("bad id counter")),
        None => Ok(first),
    }
}

/// `create-snapshot`: one entry, whatever the subtree's size: the snapshot's name, id and
/// the id counters (what exists at it) are recorded, nothing below is copied.
pub(super) fn create<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    path: &NsPath,
    name: Option<&str>,
) -> Result<OpOutput> {
    let (node, mut dir) = snapshottable_dir(txn, path)?;
    let name = name.map_or_else(|| default_name(ctx.now_ms), str::to_owned);
    check_name(&name)?;
    if by_name(txn, node.id, &name)?.is_some() {
        return Err(NsError::AlreadyExists(snapshot_path(path, &name)).into());
    }
    if dir.snapshots >= MAX_PER_DIR {
        return Err(refused(format!("{path}: already {MAX_PER_DIR} snapshots")));
    }
    let id = alloc_id(txn)?;
    let info = SnapshotInfo {
        id,
        dir: node.id,
        name: name.clone(),
        created_ms: ctx.now_ms,
        next_inode: InodeId(counter(
            txn,
            super::keys::meta::NEXT_INODE,
            super::inode::FIRST_ALLOCATED_ID.0,
        )?),
        next_group: GroupId(counter(
            txn,
            super::keys::meta::NEXT_GROUP,
            super::blocks::FIRST_GROUP_ID.0,
        )?),
    };
    txn.put(
        Cf::Snapshots,
        keys::name(node.id, &name),
        id.to_be_bytes().to_vec(),
    );
    txn.put(Cf::Snapshots, keys::info(id), encode(&info));
    txn.put(Cf::Snapshots, keys::newest(id), Vec::new());
    dir.snapshots += 1;
    txn.put(Cf::Snapshots, keys::dir(node.id), encode(&dir));
    Ok(OpOutput::Inode(root_inode(&node, &info)))
}

/// `delete-snapshot`: the name goes at once; what only it kept is collected by later
/// reclaim entries ([`gc`]).
pub(super) fn delete<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    name: &str,
) -> Result<OpOutput> {
    let (node, mut dir) = snapshottable_dir(txn, path)?;
    let Some(id) = by_name(txn, node.id, name)? else {
        return Err(NsError::NotFound(snapshot_path(path, name)).into());
    };
    txn.delete(Cf::Snapshots, keys::name(node.id, name));
    txn.delete(Cf::Snapshots, keys::info(id));
    txn.delete(Cf::Snapshots, keys::newest(id));
    txn.put(
        Cf::Snapshots,
        keys::deleted(id),
        encode(&Collection::default()),
    );
    dir.snapshots = dir.snapshots.saturating_sub(1);
    txn.put(Cf::Snapshots, keys::dir(node.id), encode(&dir));
    Ok(OpOutput::Inode(node))
}

/// `rename-snapshot`.
pub(super) fn rename<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    path: &NsPath,
    from: &str,
    to: &str,
) -> Result<OpOutput> {
    check_name(to)?;
    let (node, _) = snapshottable_dir(txn, path)?;
    let Some(id) = by_name(txn, node.id, from)? else {
        return Err(NsError::NotFound(snapshot_path(path, from)).into());
    };
    if from == to {
        return Ok(OpOutput::Inode(node));
    }
    if by_name(txn, node.id, to)?.is_some() {
        return Err(NsError::AlreadyExists(snapshot_path(path, to)).into());
    }
    let mut info = must_info(txn, id)?;
    info.name = to.to_owned();
    txn.delete(Cf::Snapshots, keys::name(node.id, from));
    txn.put(
        Cf::Snapshots,
        keys::name(node.id, to),
        id.to_be_bytes().to_vec(),
    );
    txn.put(Cf::Snapshots, keys::info(id), encode(&info));
    Ok(OpOutput::Inode(node))
}

/// Drops what snapshots keep about an inode being removed: its escape mark, and its record
/// as a snapshottable directory (one with snapshots is never removed: [`check_removable`]).
/// Read before deleted, so that removing inodes leaves no tombstones where nothing was.
pub(super) fn forget<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, inode: &Inode) -> Result<()> {
    for key in [keys::mark(inode.id), keys::dir(inode.id)] {
        if txn.get(Cf::Snapshots, &key)?.is_some() {
            txn.delete(Cf::Snapshots, key);
        }
    }
    Ok(())
}

/// The newest version a snapshot keeps of inode `id`: the file of a block group that only
/// snapshots keep (its live inode is gone), so that the redundancy scan still knows its
/// policy.
pub fn kept_inode<R: KvRead + ?Sized>(
    kv: &R,
    id: InodeId,
) -> std::result::Result<Option<Inode>, StoreError> {
    let prefix = keys::versions(b'i', &super::keys::inode(id));
    let mut newest = None;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan(Cf::SnapshotRecords, &prefix, after.as_deref(), SCAN_PAGE)?;
        let done = page.len() < SCAN_PAGE;
        after = page.last().map(|(k, _)| k.clone());
        for (_, v) in page {
            if let Some(value) = decode::<Saved>("snapshot_records", &v)?.value {
                newest = Some(value.0);
            }
        }
        if done {
            return newest
                .map(|v| decode::<Inode>("snapshot_records", &v))
                .transpose();
        }
    }
}

/// Refuses to remove `node` (delete, or replace by a rename) while it is, or holds, a
/// directory with snapshots (HDFS: "the directory has snapshot(s)").
pub(super) fn check_removable<R: KvRead + ?Sized>(
    kv: &R,
    node: &Inode,
    path: &NsPath,
) -> Result<()> {
    if !node.is_dir() {
        return Ok(());
    }
    for (dir, record) in snapshottable(kv)? {
        if record.snapshots > 0 && is_ancestor(kv, node.id, dir)? {
            let at = path_of(kv, dir)?.unwrap_or_else(|| path.to_string());
            return Err(refused(format!(
                "{path}: {at} has {} snapshots; delete them first",
                record.snapshots
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- reads

/// Where a read of a path goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAt {
    /// The live tree.
    Live(NsPath),
    /// Snapshot `info`, at `path` below its directory (read [`Anchored`] there: `/` is the
    /// directory).
    Snapshot { info: SnapshotInfo, path: NsPath },
    /// `DIR/.snapshot` itself: the directory's snapshots.
    Snapshots { dir: Inode },
}

/// Resolves the `.snapshot` component of `path`, if it has one.
pub fn read_at<R: KvRead + ?Sized>(kv: &R, path: &NsPath) -> Result<ReadAt> {
    let components = path.components();
    let Some(at) = components.iter().position(|c| c == RESERVED) else {
        return Ok(ReadAt::Live(path.clone()));
    };
    let mut dir_path = NsPath::root();
    for c in &components[..at] {
        dir_path = dir_path.child(c);
    }
    let dir = resolve(kv, &dir_path)?;
    if !dir.is_dir() || dir_record(kv, dir.id)?.is_none() {
        return Err(NsError::NotFound(path.to_string()).into());
    }
    let Some(name) = components.get(at + 1) else {
        return Ok(ReadAt::Snapshots { dir });
    };
    let Some(id) = by_name(kv, dir.id, name)? else {
        return Err(NsError::NotFound(path.to_string()).into());
    };
    let info = must_info(kv, id)?;
    let mut below = NsPath::root();
    for c in &components[at + 2..] {
        below = below.child(c);
    }
    Ok(ReadAt::Snapshot { info, path: below })
}

/// Runs a read of `path` on the tree it names: the live one, or a snapshot's. `DIR/.snapshot`
/// reads as `DIR` (its listing is [`list_snapshots`]).
pub fn read<R: KvRead, T>(
    kv: &R,
    path: &NsPath,
    f: impl FnOnce(&dyn KvRead, &NsPath) -> Result<T>,
) -> Result<T> {
    match read_at(kv, path)? {
        ReadAt::Live(p) => f(kv, &p),
        ReadAt::Snapshot { info, path } => {
            let dir = info.dir;
            f(&Anchored::new(SnapshotView::new(kv, info), dir), &path)
        }
        ReadAt::Snapshots { dir } => {
            let p = NsPath::parse(&path_of(kv, dir.id)?.unwrap_or_else(|| "/".into()))?;
            f(kv, &p)
        }
    }
}

/// `stat` of `DIR/.snapshot`: the directory, named `.snapshot`, whose children are its
/// snapshots; `None` when `path` is not such a path.
pub fn stat_snapshots<R: KvRead + ?Sized>(kv: &R, path: &NsPath) -> Result<Option<Inode>> {
    if path.name() != Some(RESERVED) {
        return Ok(None);
    }
    let ReadAt::Snapshots { dir } = read_at(kv, path)? else {
        return Ok(None);
    };
    let snapshots = dir_record(kv, dir.id)?.map_or(0, |d| d.snapshots);
    Ok(Some(Inode {
        name: RESERVED.to_owned(),
        children: u64::from(snapshots),
        ..dir
    }))
}

/// The listing of `DIR/.snapshot`: each snapshot's root, in name order, after `start_after`;
/// `None` when `path` is not such a path.
pub fn list_snapshots<R: KvRead + ?Sized>(
    kv: &R,
    path: &NsPath,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Option<(Vec<Inode>, bool)>> {
    if path.name() != Some(RESERVED) {
        return Ok(None);
    }
    let ReadAt::Snapshots { dir } = read_at(kv, path)? else {
        return Ok(None);
    };
    let mut roots = Vec::new();
    for info in of_dir(kv, dir.id)? {
        let view = SnapshotView::new(kv, info.clone());
        let then = load_inode(&view, dir.id)?.unwrap_or_else(|| dir.clone());
        roots.push(root_inode(&then, &info));
    }
    roots.sort_by(|a, b| a.name.cmp(&b.name));
    let mut page: Vec<Inode> = roots
        .into_iter()
        .filter(|r| start_after.is_none_or(|a| r.name.as_str() > a))
        .collect();
    let has_more = page.len() > limit.max(1);
    page.truncate(limit.max(1));
    Ok(Some((page, has_more)))
}

#[cfg(test)]
mod tests;
