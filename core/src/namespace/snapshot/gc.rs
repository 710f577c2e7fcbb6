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
use crate::id::{GroupId, InodeId, SnapshotId};
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

impl Step {
    fn in_range(&self, id: SnapshotId) -> bool {
        id >= self.deleted && self.next.is_none_or(|n| id < n)
    }

    /// Handles up to `limit` saved versions; returns how many and the progress (phase 1
    /// once the range is done).
    fn versions<R: KvRead + ?Sized>(
        &self,
        txn: &mut Txn<'_, R>,
        progress: Collection,
    ) -> Result<(u64, Option<Collection>)> {
        let after = progress
            .after
            .map_or_else(|| keys::before_id(keys::CHANGE, self.deleted), |b| b.0);
        let page = txn.scan(
            Cf::SnapshotChanges,
            &[keys::CHANGE],
            Some(&after),
            self.limit as usize,
        )?;
        let mut done = (page.len() as u64) < self.limit;
        let mut handled = 0;
        let mut last = None;
        for (k, _) in page {
            let id = SnapshotId(keys::u64_at(&k, 1).ok_or_else(|| corrupt("bad change key"))?);
            if !self.in_range(id) {
                done = true;
                break;
            }
            let owner = InodeId(keys::u64_at(&k, 9).ok_or_else(|| corrupt("bad change key"))?);
            let (tag, record) = match k.get(17..) {
                Some([tag, record @ ..]) => (*tag, record.to_vec()),
                _ => return Err(corrupt("bad change key")),
            };
            let needed = match &self.prev {
                Some(p) => saved_from(txn, tag, &record, p.id)?.map(|(at, _)| at) == Some(id),
                None => false,
            };
            if !needed {
                txn.delete(Cf::SnapshotRecords, keys::version(tag, &record, id));
                txn.delete(Cf::SnapshotChanges, k.clone());
                if txn
                    .scan(Cf::SnapshotChanges, &keys::changes_of(id, owner), None, 1)?
                    .is_empty()
                {
                    txn.delete(Cf::SnapshotChanges, keys::owner(owner, id));
                }
            }
            handled += 1;
            last = Some(k);
        }
        Ok((
            handled,
            Some(if done {
                Collection {
                    phase: 1,
                    after: None,
                }
            } else {
                Collection {
                    phase: 0,
                    after: last.map(Bytes),
                }
            }),
        ))
    }

    /// Handles up to `limit` retained groups; `None` once the range is done.
    fn groups<R: KvRead + ?Sized>(
        &self,
        txn: &mut Txn<'_, R>,
        progress: Collection,
    ) -> Result<(u64, Option<Collection>)> {
        let after = progress
            .after
            .map_or_else(|| keys::before_id(keys::RETAINED, self.deleted), |b| b.0);
        let page = txn.scan(
            Cf::Snapshots,
            &[keys::RETAINED],
            Some(&after),
            self.limit as usize,
        )?;
        let mut done = (page.len() as u64) < self.limit;
        let mut handled = 0;
        let mut last = None;
        for (k, _) in page {
            let id = SnapshotId(keys::u64_at(&k, 1).ok_or_else(|| corrupt("bad retained key"))?);
            if !self.in_range(id) {
                done = true;
                break;
            }
            let group = GroupId(keys::u64_at(&k, 9).ok_or_else(|| corrupt("bad retained key"))?);
            txn.delete(Cf::Snapshots, k.clone());
            match &self.prev {
                Some(p) if group < p.next_group => {
                    txn.put(Cf::Snapshots, keys::retained(p.id, group), Vec::new());
                }
                _ => {
                    txn.delete(Cf::BlockGroups, crate::namespace::keys::group(group));
                    txn.delete(Cf::Meta, crate::namespace::keys::meta::generation(group));
                }
            }
            handled += 1;
            last = Some(k);
        }
        Ok((
            handled,
            (!done).then(|| Collection {
                phase: 1,
                after: last.map(Bytes),
            }),
        ))
    }
}
