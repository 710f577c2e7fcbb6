//! Block groups of files (DESIGN §6): which groups a file has, how long each is, and where
//! the active placed their internal blocks.
//!
//! A group's record holds the targets the active chose when it allocated the group (the
//! choice is made once, on the leader, and carried in the entry, so that every replica stores
//! the same one). Where the internal blocks are *now* is not here: that is soft state rebuilt
//! from block reports (`crate::registry`).
//!
//! A file's groups are filled in order. The last group of a file under construction is
//! *open* (no length yet) until the writer allocates the next one, completes the file, or
//! lease recovery closes it; every other group has its length.

use serde::{Deserialize, Serialize};

use super::error::{ApplyError, NsError, StoreError};
use super::inode::{Inode, InodeId, StoragePolicy, decode, encode};
use super::keys;
use super::kv::{Cf, KvRead, Txn};
use crate::id::BlockServerId;

pub use crate::id::{Generation, GroupId};

/// The first group id handed out (ids below are never used, so that a zero or small id in a
/// report is recognizably bogus).
pub const FIRST_GROUP_ID: GroupId = GroupId(1 << 20);

pub use crate::policy::{CHECKSUM_CHUNK, MAX_BLOCK_SIZE};

type Result<T> = std::result::Result<T, ApplyError>;

/// One block group of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockGroup {
    pub id: GroupId,
    pub inode: InodeId,
    /// Position of the group in the file.
    pub index: u32,
    /// File offset of the group's first byte.
    pub offset: u64,
    /// Data bytes in the group; `None` while the writer is filling it.
    pub length: Option<u64>,
    /// Blockservers chosen for the internal blocks: position `i` holds internal block `i` of
    /// an erasure-coded group, or replica `i` of a replicated one.
    pub targets: Vec<BlockServerId>,
}

fn corrupt(reason: &str) -> ApplyError {
    ApplyError::Store(StoreError::Corrupt {
        cf: "block_groups",
        reason: reason.into(),
    })
}

/// Loads group `id`.
pub fn load<R: KvRead + ?Sized>(
    kv: &R,
    id: GroupId,
) -> std::result::Result<Option<BlockGroup>, StoreError> {
    kv.get(Cf::BlockGroups, &keys::group(id))?
        .map(|v| decode("block_groups", &v))
        .transpose()
}

/// The generation of group `id` (DESIGN §9): [`Generation::FIRST`] from its allocation,
/// one more for each lease recovery that closed it. A copy of an internal block stamped
/// with an older one was written before the recovery and is neither served nor counted.
pub fn generation<R: KvRead + ?Sized>(
    kv: &R,
    id: GroupId,
) -> std::result::Result<Generation, StoreError> {
    match kv.get(Cf::Meta, &keys::meta::generation(id))? {
        None => Ok(Generation::FIRST),
        // A damaged value must not read as the first generation: stale copies would count.
        Some(v) => Generation::from_be_slice(&v).ok_or_else(|| StoreError::Corrupt {
            cf: "meta",
            reason: format!("generation of group {id}: {} bytes", v.len()),
        }),
    }
}

/// Moves group `id` to its next generation (lease recovery closing it); returns it.
fn bump_generation<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, id: GroupId) -> Result<Generation> {
    let next = generation(txn, id)?.next();
    txn.put(
        Cf::Meta,
        keys::meta::generation(id),
        next.to_be_bytes().to_vec(),
    );
    Ok(next)
}

/// Whether group `id` was ever allocated (so that a block of a group that does not exist is
/// garbage, not a group this replica has yet to apply).
pub fn allocated<R: KvRead + ?Sized>(kv: &R, id: GroupId) -> std::result::Result<bool, StoreError> {
    let next = match kv.get(Cf::Meta, keys::meta::NEXT_GROUP)? {
        Some(v) => GroupId::from_be_slice(&v).unwrap_or(FIRST_GROUP_ID),
        None => FIRST_GROUP_ID,
    };
    Ok(id < next)
}

/// Up to `limit` groups with ids above `after`, in id order (the redundancy scan).
pub fn page<R: KvRead + ?Sized>(
    kv: &R,
    after: Option<GroupId>,
    limit: usize,
) -> std::result::Result<Vec<BlockGroup>, StoreError> {
    let after = after.map(keys::group);
    kv.scan(Cf::BlockGroups, &[], after.as_deref(), limit)?
        .iter()
        .map(|(_, v)| decode("block_groups", v))
        .collect()
}

/// Whether group `id` existed and is gone (its file was deleted or overwritten): its
/// internal blocks are garbage.
pub fn deleted<R: KvRead + ?Sized>(kv: &R, id: GroupId) -> std::result::Result<bool, StoreError> {
    Ok(load(kv, id)?.is_none() && allocated(kv, id)?)
}

/// Whether internal block `index` of group `id`, stamped `stamped`, as a blockserver
/// reported it, is garbage: its group was deleted, was never allocated, has no internal
/// block `index` (a group has one per target), or has moved past the block's generation (a
/// lease recovery closed the group without it: a stale writer's block, or one the recovery
/// never reached). Blocks of groups never allocated, or with an index past the group's, were
/// planted (before block access tokens) or written by a confused peer; nothing ever reads
/// them. The caller must have applied every allocation and recovery a client or blockserver
/// may have been told of, or a block just written for a new group would look never
/// allocated: the active's garbage sweep waits until it has applied its whole log first.
pub fn garbage<R: KvRead + ?Sized>(
    kv: &R,
    id: GroupId,
    index: u32,
    stamped: Generation,
) -> std::result::Result<bool, StoreError> {
    if !allocated(kv, id)? {
        return Ok(true);
    }
    Ok(match load(kv, id)? {
        None => true,
        Some(g) => {
            usize::try_from(index).map_or(true, |i| i >= g.targets.len())
                || stamped < generation(kv, id)?
        }
    })
}

/// The group at position `index` of file `inode`.
fn at<R: KvRead + ?Sized>(kv: &R, inode: InodeId, index: u32) -> Result<BlockGroup> {
    let id = kv
        .get(Cf::FileBlocks, &keys::file_block(inode, index))?
        .and_then(|v| GroupId::from_be_slice(&v))
        .ok_or_else(|| corrupt("file block index without its group"))?;
    load(kv, id)?.ok_or_else(|| corrupt("group listed by a file is missing"))
}

/// Up to `limit` closed groups of `file` that hold bytes of `[offset, end)`, in order, and
/// whether more closed groups of that range follow. The first is found by binary search on
/// the groups' offsets: O(log n + limit) reads whatever the file's size, so a reader of a
/// file of millions of groups asks for them a page at a time. The open group of a file
/// being written ends what can be read.
pub fn in_range<R: KvRead + ?Sized>(
    kv: &R,
    file: &Inode,
    offset: u64,
    end: u64,
    limit: usize,
) -> Result<(Vec<BlockGroup>, bool)> {
    let n = file.block_groups;
    // The first group that starts after `offset`; the one before it may hold `offset`.
    let (mut lo, mut hi) = (0u32, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at(kv, file.id, mid)?.offset <= offset {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut out = Vec::new();
    for i in lo.saturating_sub(1)..n {
        let g = at(kv, file.id, i)?;
        let Some(len) = g.length else { break };
        // A group from the file's length on was open when the inode was (a file read in a
        // snapshot taken while it was written: the group closed after, in place).
        if g.offset >= end || g.offset >= file.length {
            break;
        }
        if g.offset.saturating_add(len) <= offset {
            continue;
        }
        if out.len() >= limit {
            return Ok((out, true));
        }
        out.push(g);
    }
    Ok((out, false))
}

/// Bytes of `file` that lie in closed groups: what a reader may read of a file being written
/// (its open group's bytes are not settled yet).
pub fn readable_length<R: KvRead + ?Sized>(kv: &R, file: &Inode) -> Result<u64> {
    let Some(last) = file.block_groups.checked_sub(1) else {
        return Ok(0);
    };
    let g = at(kv, file.id, last)?;
    let end = g.length.map_or(g.offset, |l| g.offset.saturating_add(l));
    // Never past the inode's length: a snapshot's file whose open group closed since.
    Ok(end.min(file.length))
}

/// The open last group of `file` (being written), if it has one; one read whatever the
/// file's size.
pub fn open_group<R: KvRead + ?Sized>(kv: &R, file: &Inode) -> Result<Option<BlockGroup>> {
    match file.block_groups.checked_sub(1) {
        Some(last) => Ok(Some(at(kv, file.id, last)?).filter(|g| g.length.is_none())),
        None => Ok(None),
    }
}

/// Every group of `file`, in order.
pub fn of_file<R: KvRead + ?Sized>(kv: &R, file: &Inode) -> Result<Vec<BlockGroup>> {
    (0..file.block_groups).map(|i| at(kv, file.id, i)).collect()
}

fn put<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, group: &BlockGroup) {
    txn.put(Cf::BlockGroups, keys::group(group.id), encode(group));
}

fn alloc_id<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>) -> Result<GroupId> {
    let next = match txn.get(Cf::Meta, keys::meta::NEXT_GROUP)? {
        Some(v) => GroupId::from_be_slice(&v).ok_or_else(|| corrupt("bad next_group"))?,
        None => FIRST_GROUP_ID,
    };
    let after = next
        .checked_add(1)
        .ok_or_else(|| corrupt("group ids exhausted"))?;
    txn.put(
        Cf::Meta,
        keys::meta::NEXT_GROUP.to_vec(),
        after.to_be_bytes().to_vec(),
    );
    Ok(next)
}

/// Fixes the length of the file's open last group so that the file holds `file_length`
/// bytes; an empty open group is dropped (its writer allocated it and wrote nothing). Without
/// an open group, `file_length` must be what the file already holds.
pub fn close_open<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    file: &mut Inode,
    file_length: u64,
    path: &str,
) -> Result<()> {
    let open = match file.block_groups.checked_sub(1) {
        Some(last) => Some(at(txn, file.id, last)?).filter(|g| g.length.is_none()),
        None => None,
    };
    let Some(mut group) = open else {
        if file_length != file.length {
            return Err(NsError::InvalidArgument(format!(
                "{path}: length {file_length} does not match the file's {} bytes",
                file.length
            ))
            .into());
        }
        return Ok(());
    };
    let cap = file.policy.group_capacity(file.block_size);
    let length = file_length
        .checked_sub(group.offset)
        .filter(|l| *l <= cap)
        .ok_or_else(|| {
            NsError::InvalidArgument(format!(
                "{path}: length {file_length} is outside the last block group ({} + at most {cap} bytes)",
                group.offset
            ))
        })?;
    if length == 0 {
        txn.delete(Cf::BlockGroups, keys::group(group.id));
        txn.delete(Cf::FileBlocks, keys::file_block(file.id, group.index));
        txn.delete(Cf::Meta, keys::meta::generation(group.id));
        file.block_groups = group.index;
    } else {
        group.length = Some(length);
        put(txn, &group);
    }
    file.length = file_length;
    Ok(())
}

/// Closes the open group as lease recovery does: at `file_length`, and (when it keeps any
/// bytes) at the group's next generation, the one the leader restamped the surviving blocks
/// to before it proposed the entry. Returns that generation; `None` when there was no open
/// group or it was dropped empty.
pub fn recover_open<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    file: &mut Inode,
    file_length: u64,
    path: &str,
) -> Result<Option<Generation>> {
    let open = open_group(txn, file)?;
    close_open(txn, file, file_length, path)?;
    match open {
        Some(g) if file.block_groups > g.index => Ok(Some(bump_generation(txn, g.id)?)),
        _ => Ok(None),
    }
}

/// Closes the open group (see [`close_open`]) and allocates the next one on `targets`.
pub fn add<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    file: &mut Inode,
    file_length: u64,
    targets: &[BlockServerId],
    path: &str,
) -> Result<BlockGroup> {
    let want = file.policy.width();
    let distinct = targets
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == targets.len();
    let count_ok = match file.policy {
        StoragePolicy::Replicated(_) => (1..=want).contains(&targets.len()),
        StoragePolicy::ErasureCoded { .. } => targets.len() == want,
    };
    if !distinct || !count_ok {
        return Err(NsError::InvalidArgument(format!(
            "{path}: a block group of {} needs {want} distinct blockservers, got {targets:?}",
            file.policy
        ))
        .into());
    }
    close_open(txn, file, file_length, path)?;
    let group = BlockGroup {
        id: alloc_id(txn)?,
        inode: file.id,
        index: file.block_groups,
        offset: file.length,
        length: None,
        targets: targets.to_vec(),
    };
    file.block_groups = file
        .block_groups
        .checked_add(1)
        .ok_or_else(|| NsError::InvalidArgument(format!("{path}: too many block groups")))?;
    put(txn, &group);
    txn.put(
        Cf::FileBlocks,
        keys::file_block(file.id, group.index),
        group.id.to_be_bytes().to_vec(),
    );
    Ok(group)
}

/// Removes every group record of `file` (it is being deleted or overwritten). The internal
/// blocks on the blockservers become garbage that block reports reveal and heartbeats delete.
pub fn drop_all<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, file: &Inode) -> Result<()> {
    for index in 0..file.block_groups {
        let key = keys::file_block(file.id, index);
        if let Some(id) = txn
            .get(Cf::FileBlocks, &key)?
            .and_then(|v| GroupId::from_be_slice(&v))
        {
            txn.delete(Cf::BlockGroups, keys::group(id));
            txn.delete(Cf::Meta, keys::meta::generation(id));
        }
        txn.delete(Cf::FileBlocks, key);
    }
    Ok(())
}
