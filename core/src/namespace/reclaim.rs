//! Deleting a large subtree in bounded steps (issue #15).
//!
//! A recursive delete is applied after its entry is committed: if it removed the whole
//! subtree in one apply, its write overlay (and RocksDB's write batch) would grow with the
//! subtree, about 1 KB per inode, and a tree large enough to exhaust memory would crash every
//! member on the same committed entry, again at every restart. So a delete does a bounded
//! amount of work per entry:
//!
//! 1. **Detach** ([`detach`], in the delete's own entry): the subtree's root is unlinked from
//!    its parent and re-linked under [`RECLAIM_ID`], a directory that has no inode record and
//!    no path. Clients see the subtree gone at once, as in HDFS; its inodes, block groups,
//!    leases and xattrs stay until reclaimed. [`super::tree::path_of`] of anything in it is
//!    `None`, so lease recovery never acts on a path that now names something else.
//! 2. **Reclaim** ([`reclaim`], one `Op::Reclaim` entry at a time, proposed by the active's
//!    reclaim worker): removes at most the entry's budget of records, taken from the detached
//!    directories in key order. A child directory that has children of its own is moved
//!    under [`RECLAIM_ID`] in turn, so that no directory's listing is ever held in memory
//!    whole. What is left stays detached, and the next entry goes on from there: after a
//!    crash or a failover, the new active's worker finds the same detached directories.
//!
//! The budget is carried in the entry (the leader chose it), so every member removes exactly
//! the same records. The internal blocks of reclaimed groups become garbage on the
//! blockservers, which the garbage sweep finds and the heartbeats delete, a bounded number
//! per heartbeat.

use super::error::StoreError;
use super::inode::{Inode, InodeId};
use super::keys;
use super::kv::{Cf, KvRead, Txn};
use super::tree::{Result, SCAN_PAGE, child_id, load_inode, must_load};
use super::write::{drop_inode_records, put_inode};

/// The parent of every detached subtree: a directory with no inode record, reachable by no
/// path. Its entries are named by the detached inode's id ([`entry_name`]).
pub const RECLAIM_ID: InodeId = InodeId(2);

/// The name of a detached inode's entry under [`RECLAIM_ID`]: its id in fixed-width hex, so
/// that the entries sort by id.
fn entry_name(id: InodeId) -> String {
    format!("{:016x}", id.0)
}

/// What removing one inode's records costs, in the unit of a reclaim budget: the inode, and
/// each of its block groups (two records each).
pub fn cost(inode: &Inode) -> u64 {
    1 + u64::from(inode.block_groups)
}

/// Unlinks nothing (the caller unlinks `root` from its parent) and re-links `root` under
/// [`RECLAIM_ID`], where [`reclaim`] removes it and everything below it in later entries.
pub(super) fn detach<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, mut root: Inode) {
    let name = entry_name(root.id);
    txn.put(
        Cf::Dentries,
        keys::dentry(RECLAIM_ID, &name),
        root.id.to_be_bytes().to_vec(),
    );
    root.parent = RECLAIM_ID;
    root.name = name;
    put_inode(txn, &root);
}

/// Whether any detached subtree, or deleted snapshot (`snapshot::gc`), is left to reclaim.
pub fn pending<R: KvRead + ?Sized>(kv: &R) -> std::result::Result<bool, StoreError> {
    Ok(!kv
        .scan(Cf::Dentries, &keys::dentry_prefix(RECLAIM_ID), None, 1)?
        .is_empty()
        || super::snapshot::collection_pending(kv)?)
}

/// Removes detached records until `budget` is spent (at least one inode per call, so that
/// any budget makes progress) or nothing is detached. Returns the inodes removed.
pub(super) fn reclaim<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, budget: u64) -> Result<u64> {
    let mut spent = 0u64;
    let mut removed = 0u64;
    let prefix = keys::dentry_prefix(RECLAIM_ID);
    let mut after: Option<Vec<u8>> = None;
    while spent < budget.max(1) {
        // One detached directory at a time, in key order; a cursor, so that the entries this
        // entry already removed are not scanned again.
        let Some((key, value)) = txn
            .scan(Cf::Dentries, &prefix, after.as_deref(), 1)?
            .into_iter()
            .next()
        else {
            break;
        };
        after = Some(key.clone());
        let id = child_id(&value)?;
        let Some(dir) = load_inode(txn, id)? else {
            // Its records are gone already: only the entry is left.
            txn.delete(Cf::Dentries, key);
            continue;
        };
        let (done, step) = empty_dir(txn, &dir, budget.max(1) - spent)?;
        spent = spent.saturating_add(step.spent);
        removed = removed.saturating_add(step.removed);
        if done {
            drop_inode_records(txn, &dir)?;
            txn.delete(Cf::Dentries, key);
            spent = spent.saturating_add(cost(&dir));
            removed = removed.saturating_add(1);
        }
    }
    // What is left of the budget collects deleted snapshots.
    if spent < budget.max(1) {
        super::snapshot::collect(txn, budget.max(1) - spent)?;
    }
    Ok(removed)
}

#[derive(Default)]
struct Step {
    spent: u64,
    removed: u64,
}

/// Removes `dir`'s children until `budget` is spent: files, symlinks and empty directories
/// go at once, a directory with children is detached in turn. Returns whether `dir` is empty.
fn empty_dir<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    dir: &Inode,
    budget: u64,
) -> Result<(bool, Step)> {
    let mut step = Step::default();
    let prefix = keys::dentry_prefix(dir.id);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = txn.scan(Cf::Dentries, &prefix, after.as_deref(), SCAN_PAGE)?;
        let exhausted = page.len() < SCAN_PAGE;
        after = page.last().map(|(k, _)| k.clone());
        for (key, value) in page {
            if step.spent >= budget {
                return Ok((false, step));
            }
            let child = must_load(txn, child_id(&value)?)?;
            txn.delete(Cf::Dentries, key);
            if child.is_dir() && child.children > 0 {
                detach(txn, child);
                step.spent = step.spent.saturating_add(1);
            } else {
                step.spent = step.spent.saturating_add(cost(&child));
                step.removed = step.removed.saturating_add(1);
                drop_inode_records(txn, &child)?;
            }
        }
        if exhausted {
            return Ok((true, step));
        }
    }
}
