//! Copy on first write: after each operation, the records it changed that a snapshot may
//! show are saved as they were ([`preserve`], run by `exec::apply` for every operation, so
//! that no operation can forget it).
//!
//! Why reading snapshot `s` as "the version saved under the smallest id `>= s`, else the
//! live record" is right. Let `t` be the first change of a record after `s` was taken, and
//! `E` the newest existing snapshot then (`E >= s`, since `s` exists). No version of the
//! record is saved under an id in `[E, ...)` yet: such a save happened at a change after
//! that id's snapshot was taken, so after `s`, so at `t` or later. So `t` saves the record
//! as it was before `t`, which is as it was at `s`, under `E`. No save can later land in
//! `[s, E)`: a change at `t' > t` saves under the newest snapshot then, `E'`; if `E' < E`,
//! `E` was deleted in between, and collecting it kept the version under `E` because `s`
//! still needs it (`gc`), so `t'` finds a version `>= E'` and saves nothing. (A record not
//! changed since `s` has no version `>= s`: the live one is the one of `s`.)
//!
//! Only records a snapshot may show are saved: those of inodes *protected* before the
//! change, i.e. below a directory that has snapshots, or below an inode that left such a
//! subtree (renamed out, or detached by a recursive delete) while a snapshot older than its
//! leaving existed: such an inode gets an escape mark with the newest snapshot's id, so
//! that what happens later below it is still saved for the snapshots that show it where it
//! was. Inodes created after the newest snapshot are in none, and are never saved.

use std::collections::HashMap;

use super::keys;
use super::{Bytes, Saved, SnapshotDir, corrupt};
use crate::id::{GroupId, InodeId, SnapshotId};
use crate::namespace::blocks::BlockGroup;
use crate::namespace::error::StoreError;
use crate::namespace::inode::{Inode, ROOT_ID, decode, encode};
use crate::namespace::kv::{Cf, Change, KvRead, Savepoint, Txn};
use crate::namespace::reclaim::RECLAIM_ID;
use crate::namespace::tree::Result;

/// Longest chain of parent links walked. A path is at most 1000 deep, but renames can hang a
/// subtree deeper (each rename checks only its own paths); past this an operation that must
/// walk is refused (a typed refusal, the same on every member), never a storage error that
/// would stop the state machine.
pub(crate) const MAX_WALK: usize = 100_000;

/// The refusal of an operation that would walk more than [`MAX_WALK`] parent links.
pub(crate) fn too_deep(id: InodeId) -> crate::namespace::ApplyError {
    crate::namespace::NsError::InvalidArgument(format!(
        "inode {id} is more than {MAX_WALK} directories deep"
    ))
    .into()
}

/// A point read of the namespace as it was before the operation, or as it is after.
type Get<'a> = dyn Fn(Cf, &[u8]) -> std::result::Result<Option<Vec<u8>>, StoreError> + 'a;

/// The inode a versioned record belongs to: the first 8 bytes of its key (an inode's id, a
/// directory entry's parent, an attribute's or a group index's inode).
fn owner_of(key: &[u8]) -> Result<InodeId> {
    keys::u64_at(key, 0)
        .map(InodeId)
        .ok_or_else(|| corrupt("a namespace key shorter than an inode id"))
}

/// Whether a snapshot may show inode `start`'s records: it or an ancestor has snapshots,
/// or carries an escape mark no older than the oldest existing snapshot. Every inode on the
/// walk is cached with the answer (protection is inherited downward).
fn protected(
    get: &Get<'_>,
    start: InodeId,
    oldest: SnapshotId,
    cache: &mut HashMap<InodeId, bool>,
) -> Result<bool> {
    let mut seen = Vec::new();
    let mut at = start;
    let answer = loop {
        if let Some(&known) = cache.get(&at) {
            break known;
        }
        if seen.len() > MAX_WALK {
            return Err(too_deep(start));
        }
        seen.push(at);
        if at == RECLAIM_ID {
            break false;
        }
        if let Some(v) = get(Cf::Snapshots, &keys::dir(at))?
            && decode::<SnapshotDir>("snapshots", &v)?.snapshots > 0
        {
            break true;
        }
        if let Some(v) = get(Cf::Snapshots, &keys::mark(at))? {
            let mark = SnapshotId::from_be_slice(&v).ok_or_else(|| corrupt("bad escape mark"))?;
            if mark >= oldest {
                break true;
            }
        }
        if at == ROOT_ID {
            break false;
        }
        match get(Cf::Inodes, &crate::namespace::keys::inode(at))? {
            Some(v) => at = decode::<Inode>("inodes", &v)?.parent,
            None => break false,
        }
    };
    for id in seen {
        cache.insert(id, answer);
    }
    Ok(answer)
}

/// Whether record (`tag`, `key`) has a version saved under `id` or a later id.
pub(super) fn saved_from<R: KvRead + ?Sized>(
    kv: &R,
    tag: u8,
    key: &[u8],
    id: SnapshotId,
) -> std::result::Result<Option<(SnapshotId, Saved)>, StoreError> {
    let prefix = keys::versions(tag, key);
    let after = keys::version(tag, key, SnapshotId(id.0.saturating_sub(1)));
    let after = (id.0 > 0).then_some(after);
    match kv
        .scan(Cf::SnapshotRecords, &prefix, after.as_deref(), 1)?
        .into_iter()
        .next()
    {
        Some((k, v)) => {
            let at =
                keys::u64_at(&k, k.len().saturating_sub(8)).ok_or_else(|| StoreError::Corrupt {
                    cf: "snapshot_records",
                    reason: "bad saved-record key".into(),
                })?;
            Ok(Some((
                SnapshotId(at),
                decode::<Saved>("snapshot_records", &v)?,
            )))
        }
        None => Ok(None),
    }
}

/// A record to save: its tag, owner and key, and its value before the operation.
struct Save {
    tag: u8,
    owner: InodeId,
    key: Vec<u8>,
    before: Option<Vec<u8>>,
}

/// What one operation's changes call for.
#[derive(Default)]
struct Plan {
    saves: Vec<Save>,
    /// Groups dropped by a protected file: (group, its record).
    retain: Vec<(GroupId, Vec<u8>)>,
    /// Inodes that left every protected subtree: marked.
    escaped: Vec<InodeId>,
}

/// Saves what the operation since `savepoint` changed that a snapshot may show, keeps the
/// block groups such files dropped, and marks the inodes that left a protected subtree.
/// Nothing to do, and one read, while no snapshot exists.
pub(crate) fn preserve<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    savepoint: Savepoint,
) -> Result<()> {
    let Some(newest) = super::newest(txn)? else {
        return Ok(());
    };
    let oldest = super::newer_than(txn, SnapshotId(0))?.map_or(newest.id, |i| i.id);
    // Only what a snapshot may show: records of inodes older than the newest snapshot (so
    // an operation on what was created since reads nothing more), dropped groups and their
    // generations, and the snapshots' own records.
    let generations = crate::namespace::keys::meta::GENERATION_PREFIX;
    let changes = txn.changes_since_where(savepoint, |cf, key| match cf {
        Cf::BlockGroups | Cf::Snapshots => true,
        Cf::Meta => key.starts_with(generations),
        cf if keys::record_tag(cf).is_some() => {
            keys::u64_at(key, 0).is_some_and(|owner| InodeId(owner) < newest.next_inode)
        }
        _ => false,
    })?;
    if changes.is_empty() {
        return Ok(());
    }
    let plan = plan(txn, &changes, &newest, oldest)?;
    for Save {
        tag,
        owner,
        key,
        before,
    } in plan.saves
    {
        if saved_from(txn, tag, &key, newest.id)?.is_some() {
            continue;
        }
        let saved = Saved {
            value: before.map(Bytes),
        };
        txn.put(
            Cf::SnapshotRecords,
            keys::version(tag, &key, newest.id),
            encode(&saved),
        );
        txn.put(
            Cf::SnapshotChanges,
            keys::change(newest.id, owner, tag, &key),
            Vec::new(),
        );
        txn.put(
            Cf::SnapshotChanges,
            keys::owner(owner, newest.id),
            Vec::new(),
        );
    }
    for (group, record) in plan.retain {
        txn.put(
            Cf::BlockGroups,
            crate::namespace::keys::group(group),
            record,
        );
        let generation = crate::namespace::keys::meta::generation(group);
        if let Some(c) = changes
            .iter()
            .find(|c| c.cf == Cf::Meta && c.key == generation && c.after.is_none())
            && let Some(before) = &c.before
        {
            txn.put(Cf::Meta, generation, before.clone());
        }
        txn.put(Cf::Snapshots, keys::retained(newest.id, group), Vec::new());
    }
    for id in plan.escaped {
        let mark = match txn.get(Cf::Snapshots, &keys::mark(id))? {
            Some(v) => SnapshotId::from_be_slice(&v).map_or(newest.id, |m| m.max(newest.id)),
            None => newest.id,
        };
        txn.put(Cf::Snapshots, keys::mark(id), mark.to_be_bytes().to_vec());
    }
    Ok(())
}

fn plan<R: KvRead + ?Sized>(
    txn: &Txn<'_, R>,
    changes: &[Change],
    newest: &super::SnapshotInfo,
    oldest: SnapshotId,
) -> Result<Plan> {
    let before: HashMap<(Cf, &[u8]), &Option<Vec<u8>>> = changes
        .iter()
        .map(|c| ((c.cf, c.key.as_slice()), &c.before))
        .collect();
    let pre = |cf: Cf, key: &[u8]| match before.get(&(cf, key)) {
        Some(v) => Ok((*v).clone()),
        None => txn.get(cf, key),
    };
    let mut pre_cache = HashMap::new();
    let mut plan = Plan::default();
    for c in changes {
        if let Some(tag) = keys::record_tag(c.cf) {
            let owner = owner_of(&c.key)?;
            let shown =
                owner < newest.next_inode && protected(&pre, owner, oldest, &mut pre_cache)?;
            if shown {
                plan.saves.push(Save {
                    tag,
                    owner,
                    key: c.key.clone(),
                    before: c.before.clone(),
                });
            }
            // A shown inode that moves carries its own mark: whatever protects it where it
            // went (another directory's snapshots, another escaped subtree's mark) may end
            // before the snapshots that show it where it was.
            if c.cf == Cf::Inodes
                && shown
                && let (Some(b), Some(a)) = (&c.before, &c.after)
                && decode::<Inode>("inodes", b)?.parent != decode::<Inode>("inodes", a)?.parent
            {
                plan.escaped.push(owner);
            }
        } else if c.cf == Cf::BlockGroups
            && c.after.is_none()
            && let Some(record) = &c.before
        {
            let group: BlockGroup = decode("block_groups", record)?;
            // A file drops a group with its index entry; a collection deletes a group the
            // snapshots no longer need alone, and is not undone.
            let index = crate::namespace::keys::file_block(group.inode, group.index);
            let dropped = changes
                .iter()
                .any(|d| d.cf == Cf::FileBlocks && d.key == index && d.after.is_none());
            if dropped
                && group.id < newest.next_group
                && group.inode < newest.next_inode
                && protected(&pre, group.inode, oldest, &mut pre_cache)?
            {
                plan.retain.push((group.id, record.clone()));
            }
        }
    }
    Ok(plan)
}
