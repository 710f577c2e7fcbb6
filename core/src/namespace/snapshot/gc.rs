//! Collecting a deleted snapshot `d`, in bounded steps of the reclaim entries (as a
//! recursive delete is reclaimed: the budget rides in the entry, every member removes the
//! same records).
//!
//! Only the versions saved under ids in `[d, N)` (`N` the next existing snapshot) can have
//! been needed by `d` alone: a version under `X` serves the snapshots in `(Y, X]`, `Y` the
//! record's previous saved id, and the existing ones there are now at most `P`, the newest
//! existing snapshot older than `d`. So a version is kept iff `P` exists and it is the one
//! `P` reads (the first saved `>= P`); otherwise it goes. A block group retained under such
//! an id is kept (and filed under `P`) iff `P` exists and the group existed at `P`;
//! otherwise its record goes and its blocks become garbage.

use super::cow::saved_from;
use super::{Bytes, Collection, corrupt, keys};
use crate::id::{GroupId, SnapshotId};
use crate::namespace::error::StoreError;
use crate::namespace::inode::{decode, encode};
use crate::namespace::kv::{Cf, KvRead, Txn};
use crate::namespace::tree::Result;

/// Keys handled per scan.
const PAGE: u64 = 256;

/// Whether a deleted snapshot is waiting to be collected.
pub fn pending<R: KvRead + ?Sized>(kv: &R) -> std::result::Result<bool, StoreError> {
    Ok(!kv
        .scan(Cf::Snapshots, &[keys::DELETED], None, 1)?
        .is_empty())
}

/// Collects deleted snapshots until `budget` keys are handled or none is left; returns the
/// keys handled.
pub(crate) fn collect<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, budget: u64) -> Result<u64> {
    let mut spent = 0u64;
    while spent < budget {
        let Some((key, value)) = txn
            .scan(Cf::Snapshots, &[keys::DELETED], None, 1)?
            .into_iter()
            .next()
        else {
            break;
        };
        let deleted = SnapshotId(keys::u64_at(&key, 1).ok_or_else(|| corrupt("bad deleted key"))?);
        let progress: Collection = decode("snapshots", &value)?;
        let step = Step {
            deleted,
            next: super::newer_than(txn, deleted)?.map(|i| i.id),
            prev: super::older_than(txn, deleted)?,
            limit: (budget - spent).min(PAGE),
        };
        let (handled, next) = if progress.phase == 0 {
            step.versions(txn, progress)?
        } else {
            step.groups(txn, progress)?
        };
        spent = spent.saturating_add(handled.max(1));
        match next {
            Some(p) => txn.put(Cf::Snapshots, key, encode(&p)),
            None => txn.delete(Cf::Snapshots, key),
        }
    }
    Ok(spent)
}

struct Step {
    deleted: SnapshotId,
    /// The oldest existing snapshot newer than the deleted one.
    next: Option<SnapshotId>,
    /// The newest existing snapshot older than the deleted one.
    prev: Option<super::SnapshotInfo>,
    limit: u64,
}

/// How far a phase went in one step.
struct Walked {
    handled: u64,
    /// The phase's range is done.
    done: bool,
    /// The last key handled.
    last: Option<Vec<u8>>,
}

impl Step {
    fn in_range(&self, id: SnapshotId) -> bool {
        id >= self.deleted && self.next.is_none_or(|n| id < n)
    }

    /// Hands `handle` up to `limit` keys of family `tag` in `cf` (keyed `tag ++ id ++ ...`)
    /// whose id is in the deleted snapshot's range, after `after` (the phase's start).
    fn walk<R: KvRead + ?Sized>(
        &self,
        txn: &mut Txn<'_, R>,
        (cf, tag): (Cf, u8),
        after: Option<Bytes>,
        mut handle: impl FnMut(&mut Txn<'_, R>, &[u8], SnapshotId) -> Result<()>,
    ) -> Result<Walked> {
        let after = after.map_or_else(|| keys::before_id(tag, self.deleted), |b| b.0);
        let page = txn.scan(cf, &[tag], Some(&after), self.limit as usize)?;
        let mut walked = Walked {
            handled: 0,
            done: (page.len() as u64) < self.limit,
            last: None,
        };
        for (k, _) in page {
            let id = SnapshotId(keys::u64_at(&k, 1).ok_or_else(|| corrupt("bad key"))?);
            if !self.in_range(id) {
                walked.done = true;
                break;
            }
            handle(txn, &k, id)?;
            walked.handled += 1;
            walked.last = Some(k);
        }
        Ok(walked)
    }

    /// Handles up to `limit` saved versions; returns how many and the progress (phase 1
    /// once the range is done).
    fn versions<R: KvRead + ?Sized>(
        &self,
        txn: &mut Txn<'_, R>,
        progress: Collection,
    ) -> Result<(u64, Option<Collection>)> {
        let walked = self.walk(
            txn,
            (Cf::SnapshotChanges, keys::CHANGE),
            progress.after,
            |txn, k, id| {
                let (owner, tag, record) =
                    keys::parse_change(k).ok_or_else(|| corrupt("bad change key"))?;
                let needed = match &self.prev {
                    Some(p) => saved_from(txn, tag, record, p.id)?.map(|(at, _)| at) == Some(id),
                    None => false,
                };
                if !needed {
                    txn.delete(Cf::SnapshotRecords, keys::version(tag, record, id));
                    txn.delete(Cf::SnapshotChanges, k.to_vec());
                    if txn
                        .scan(Cf::SnapshotChanges, &keys::changes_of(id, owner), None, 1)?
                        .is_empty()
                    {
                        txn.delete(Cf::SnapshotChanges, keys::owner(owner, id));
                    }
                }
                Ok(())
            },
        )?;
        let next = if walked.done {
            Collection {
                phase: 1,
                after: None,
            }
        } else {
            Collection {
                phase: 0,
                after: walked.last.map(Bytes),
            }
        };
        Ok((walked.handled, Some(next)))
    }

    /// Handles up to `limit` retained groups; `None` once the range is done.
    fn groups<R: KvRead + ?Sized>(
        &self,
        txn: &mut Txn<'_, R>,
        progress: Collection,
    ) -> Result<(u64, Option<Collection>)> {
        let walked = self.walk(
            txn,
            (Cf::Snapshots, keys::RETAINED),
            progress.after,
            |txn, k, _| {
                let group = GroupId(keys::u64_at(k, 9).ok_or_else(|| corrupt("bad retained key"))?);
                txn.delete(Cf::Snapshots, k.to_vec());
                match &self.prev {
                    Some(p) if group < p.next_group => {
                        txn.put(Cf::Snapshots, keys::retained(p.id, group), Vec::new());
                    }
                    _ => {
                        txn.delete(Cf::BlockGroups, crate::namespace::keys::group(group));
                        txn.delete(Cf::Meta, crate::namespace::keys::meta::generation(group));
                    }
                }
                Ok(())
            },
        )?;
        let next = (!walked.done).then(|| Collection {
            phase: 1,
            after: walked.last.map(Bytes),
        });
        Ok((walked.handled, next))
    }
}
