//! Reconstruction work (DESIGN §7) as the active plans it and a blockserver runs it: the
//! task that rebuilds one lost internal block, where its sources are, how it ended, and the
//! byte budgets a blockserver holds while it works.
//!
//! The active's scheduler builds these types and the blockserver's worker runs them; each
//! server converts them to and from the wire at its edge. What a peer could get wrong is
//! checked here, once, by [`ReconstructionTask::validate`] and [`PartialCell::validate`], so
//! that a task a blockserver accepts cannot make it index past a stripe or allocate without
//! bound: every internal block it writes is within [`MAX_BLOCK_SIZE`], every cell within the
//! policy's cap.

use std::collections::{BTreeMap, BTreeSet};

use crate::id::{BlockServerId, TaskId};
use crate::namespace::blocks::GroupId;
use crate::policy::{MAX_BLOCK_SIZE, PolicyError, StoragePolicy};

/// Longest rack name, bytes: a blockserver with a longer one cannot register, so every rack
/// a peer reports (in rebuild reads, say) fits it.
pub const MAX_RACK_NAME: usize = 256;

pub mod budget;

/// Rebuild internal block `index` of `group` on the blockserver that receives the task, from
/// `sources`: k of the group's other internal blocks (decoded a stripe at a time), or one
/// copy of a replicated block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconstructionTask {
    /// Chosen by the active; the outcome and any cancellation name the task by it.
    pub id: TaskId,
    pub group: GroupId,
    /// The group's policy: its layout says how long each internal block is and how a cell
    /// is decoded; a blockserver knows nothing of files.
    pub policy: StoragePolicy,
    /// Data bytes in the (closed) group.
    pub group_length: u64,
    /// The lost internal block (0 for a replicated group).
    pub index: u32,
    /// Where to read from, nearest first (DESIGN §7, sources). For an erasure-coded group
    /// exactly k blocks other than `index`, each once; for a replica, copies of it.
    pub sources: Vec<BlockSource>,
    /// The xmits the task holds while it runs, computed by the active (saturating).
    pub weight: u32,
    /// Rack-aware reconstruction: a source in each other rack with two or more sources
    /// combines that rack's cells there ([`PartialCell`]), so one cell per rack crosses
    /// instead of one per source. Off in the rack-blind baseline.
    pub aggregate: bool,
}

/// One internal block a task reads, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSource {
    /// The internal block (0 for a replica).
    pub index: u32,
    /// The blockserver holding it, as registered with the metaservers; 0 for known zeros.
    pub node: BlockServerId,
    /// Its data address; empty for known zeros ([`BlockSource::zeros`]).
    pub addr: String,
    /// Its rack: reads are charged to the budgets of the source's rack, and a rack's sources
    /// are combined there.
    pub rack: String,
}

impl BlockSource {
    /// An internal block the layout leaves empty (a data block past the end of a short
    /// group): known zeros, a free source read from nowhere.
    pub fn zeros(index: u32, rack: String) -> Self {
        Self {
            index,
            node: BlockServerId(0),
            addr: String::new(),
            rack,
        }
    }

    /// Whether this source is known zeros, read from no server.
    pub fn is_zeros(&self) -> bool {
        self.addr.is_empty()
    }
}

/// How a task ended, reported with the blockserver's next heartbeat to the metaserver that
/// sent it, so that a failed block is queued again at once rather than after the timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskOutcome {
    pub task_id: TaskId,
    pub group: GroupId,
    pub index: u32,
    /// Why it failed; `None` when the block was rebuilt and finalized.
    pub error: Option<String>,
}

impl TaskOutcome {
    /// Whether the block was rebuilt.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// One blockserver's reconstruction budgets now (DESIGN §7, byte budgets): its own rate, and
/// its share of every rack-pair and datacenter-pair budget whose traffic reaches it. The
/// active divides each journaled budget among the destination's servers with work, so the
/// shares add up to at most the budget, and sends every server its own in heartbeat replies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Throttle {
    /// Bytes per second this server may read and write for reconstruction; 0: unlimited.
    pub node_bytes_per_sec: u64,
    pub budgets: Vec<ByteBudget>,
    /// The most tasks the sending active lets this server run at once (its `max-streams`);
    /// 0: no limit. An active hands out at most `max-streams - xmits` tasks, each weighing at
    /// least 1, so alone it never passes this; two actives of a federation handing out in
    /// the same second could, and the server refuses tasks past it (DESIGN §10).
    pub max_tasks: u32,
}

/// This server's share of one pair budget: reads from a source in one of `from_racks` are
/// charged to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteBudget {
    /// Names the budget (`rack r1>r2`, `datacenter dc1>dc2`): a bucket whose name and rate
    /// stay the same keeps its state across heartbeats.
    pub name: String,
    pub from_racks: Vec<String>,
    /// 0: none (the pair was removed).
    pub bytes_per_sec: u64,
}

/// What a blockserver in another rack is asked for during rack-aware reconstruction: its
/// rack's part of one lost cell, the decode over the task's k sources (`all`) with every
/// source outside `local` taken as zeros. Decoding is linear, so the racks' parts XOR to the
/// lost cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialCell {
    pub group: GroupId,
    /// Erasure-coded: a replica has no cells to combine.
    pub policy: StoragePolicy,
    pub group_length: u64,
    /// The lost internal block.
    pub lost: u32,
    /// Offset in the internal blocks of the stripe's cells.
    pub offset: u64,
    /// The task's k source indices.
    pub all: Vec<u32>,
    /// The sources to read here, each among `all`.
    pub local: Vec<BlockSource>,
}

/// Why a reconstruction task or a partial cell was refused. Each is a sender's bug or a
/// hostile peer, never a reason to retry the same task.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTask {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("group length {length} is more than a group of {policy} holds ({max} bytes)")]
    GroupTooLong {
        policy: String,
        length: u64,
        max: u64,
    },
    #[error("internal block {index} is outside a group of {width}")]
    IndexOutOfRange { index: u32, width: usize },
    #[error("{have} sources for {policy}, which needs {need}")]
    SourceCount {
        policy: String,
        have: usize,
        need: usize,
    },
    #[error("internal block {0} is named twice among the sources")]
    DuplicateSource(u32),
    #[error("the lost internal block {0} is among its own sources")]
    LostAmongSources(u32),
    #[error("source {index} is named as known zeros but holds {length} bytes")]
    ZerosNotEmpty { index: u32, length: u64 },
    #[error("{0} is not erasure-coded: its blocks have no cells to combine")]
    NotErasureCoded(String),
    #[error("local source {0} is not among the task's sources")]
    LocalNotASource(u32),
}

impl ReconstructionTask {
    /// Checks what the worker relies on: the lost block and every source within the group's
    /// width; for erasure coding exactly k distinct sources, none of them the lost block, or
    /// one copy of the block itself ([`Self::is_copy`]); for a replica at least one; known zeros only where the layout leaves a block empty; and a
    /// group no longer than the policy holds with blocks of [`MAX_BLOCK_SIZE`], which bounds
    /// the block written and every read.
    pub fn validate(&self) -> Result<(), InvalidTask> {
        check_length(&self.policy, self.group_length)?;
        let width = self.policy.width();
        check_index(self.index, width)?;
        let erasure_coded = matches!(self.policy, StoragePolicy::ErasureCoded { .. });
        let need = self.policy.data_blocks();
        if erasure_coded && self.is_copy() {
            return self.sources.iter().try_for_each(|s| {
                check_index(s.index, width)?;
                check_zeros(&self.policy, self.group_length, s)
            });
        }
        let count_ok = if erasure_coded {
            self.sources.len() == need
        } else {
            !self.sources.is_empty()
        };
        if !count_ok {
            return Err(InvalidTask::SourceCount {
                policy: self.policy.to_string(),
                have: self.sources.len(),
                need,
            });
        }
        let mut seen = BTreeSet::new();
        for s in &self.sources {
            check_index(s.index, width)?;
            if erasure_coded {
                if s.index == self.index {
                    return Err(InvalidTask::LostAmongSources(s.index));
                }
                if !seen.insert(s.index) {
                    return Err(InvalidTask::DuplicateSource(s.index));
                }
            }
            check_zeros(&self.policy, self.group_length, s)?;
        }
        Ok(())
    }

    /// Whether the block is copied from one copy of itself rather than decoded: always for a
    /// replica; for an erasure-coded group, a block whose copy is on a server being drained
    /// (one source, the block itself).
    pub fn is_copy(&self) -> bool {
        match self.policy {
            StoragePolicy::Replicated(_) => true,
            StoragePolicy::ErasureCoded { .. } => {
                matches!(self.sources.as_slice(), [s] if s.index == self.index && !s.is_zeros())
            }
        }
    }

    /// How each stripe of a decode is read by a target in rack `my_rack`. Without
    /// `aggregate` every source is read on its own; with it, the sources of each other rack
    /// that holds two or more are combined there by the first of them ([`PartialCell`]), so
    /// one cell per such rack crosses instead of one per source. A rack with a single source
    /// sends its cell as it is (nothing to gain in combining); known zeros are read from
    /// nowhere.
    pub fn stripe_reads(&self, my_rack: &str) -> StripeReads<'_> {
        let mut combined: BTreeMap<&str, Vec<&BlockSource>> = BTreeMap::new();
        let mut here: Vec<&BlockSource> = Vec::new();
        for s in &self.sources {
            if self.aggregate && !s.is_zeros() && s.rack != my_rack {
                combined.entry(s.rack.as_str()).or_default().push(s);
            } else {
                here.push(s);
            }
        }
        combined.retain(|_, v| {
            if v.len() < 2 {
                here.append(v);
                false
            } else {
                true
            }
        });
        StripeReads { here, combined }
    }

    /// The cells of every stripe (or, for a copy, the bytes of the block per byte written)
    /// that cross into a target in `my_rack`, by the rack they come from: what the target
    /// charges to each rack's budgets. A source in `my_rack` is keyed by `my_rack`.
    pub fn cells_by_rack(&self, my_rack: &str) -> BTreeMap<String, u32> {
        let mut out: BTreeMap<String, u32> = BTreeMap::new();
        if self.is_copy() {
            if let Some(s) = self.sources.first() {
                out.insert(s.rack.clone(), 1);
            }
            return out;
        }
        let reads = self.stripe_reads(my_rack);
        for s in reads.here.iter().filter(|s| !s.is_zeros()) {
            *out.entry(s.rack.clone()).or_default() += 1;
        }
        for rack in reads.combined.keys() {
            *out.entry((*rack).to_owned()).or_default() += 1;
        }
        out
    }

    /// The part of the lost cell at block offset `offset` that the sources `local` give.
    pub fn partial(&self, offset: u64, local: Vec<BlockSource>) -> PartialCell {
        PartialCell {
            group: self.group,
            policy: self.policy.clone(),
            group_length: self.group_length,
            lost: self.index,
            offset,
            all: self.sources.iter().map(|s| s.index).collect(),
            local,
        }
    }
}

/// How one stripe of a decode is read ([`ReconstructionTask::stripe_reads`]).
#[derive(Debug)]
pub struct StripeReads<'a> {
    /// Sources read by the target itself, one cell each (zeros cost nothing).
    pub here: Vec<&'a BlockSource>,
    /// Other racks with two or more sources, each combined there by its first source.
    pub combined: BTreeMap<&'a str, Vec<&'a BlockSource>>,
}

impl PartialCell {
    /// Checks what the decode relies on: an erasure-coded policy, a group it can hold, the
    /// lost block within the width, k distinct sources in `all` other than the lost block,
    /// and every local source once among them (known zeros only where the layout leaves a
    /// block empty). The offset needs no check: a cell read past a block's end is empty.
    pub fn validate(&self) -> Result<(), InvalidTask> {
        if !matches!(self.policy, StoragePolicy::ErasureCoded { .. }) {
            return Err(InvalidTask::NotErasureCoded(self.policy.to_string()));
        }
        check_length(&self.policy, self.group_length)?;
        let width = self.policy.width();
        check_index(self.lost, width)?;
        let need = self.policy.data_blocks();
        if self.all.len() != need {
            return Err(InvalidTask::SourceCount {
                policy: self.policy.to_string(),
                have: self.all.len(),
                need,
            });
        }
        let mut all = BTreeSet::new();
        for i in &self.all {
            check_index(*i, width)?;
            if *i == self.lost {
                return Err(InvalidTask::LostAmongSources(*i));
            }
            if !all.insert(*i) {
                return Err(InvalidTask::DuplicateSource(*i));
            }
        }
        let mut local = BTreeSet::new();
        for s in &self.local {
            if !all.contains(&s.index) {
                return Err(InvalidTask::LocalNotASource(s.index));
            }
            if !local.insert(s.index) {
                return Err(InvalidTask::DuplicateSource(s.index));
            }
            check_zeros(&self.policy, self.group_length, s)?;
        }
        Ok(())
    }
}

/// The buffers of a [`PartialCell`]'s decode, sized from the policy, the group length and the
/// offset before anything is allocated: each of the k cells decoded, and the part returned,
/// is `cell_len` bytes (the stripe's cell 0 from the offset: at most one cell of the policy,
/// so at most 4 MiB), and each local source is read for at most as many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialPlan {
    /// Bytes of every cell of the decode and of the part returned.
    pub cell_len: u64,
    /// Bytes to read from each source of [`PartialCell::local`], in its order (0: nothing,
    /// the block is empty there or known zeros).
    pub reads: Vec<u64>,
}

impl PartialPlan {
    /// The most bytes the decode holds at once: `cells` cells (the task's k sources), the
    /// part returned, and every read.
    pub fn bytes(&self, cells: usize) -> u64 {
        let reads = self.reads.iter().fold(0u64, |a, r| a.saturating_add(*r));
        self.cell_len
            .saturating_mul(cells as u64 + 1)
            .saturating_add(reads)
    }
}

impl PartialCell {
    /// The sizes of this partial cell's buffers ([`PartialPlan`]); refused for a policy
    /// without cells. Pure arithmetic, overflow-free for any group length and offset.
    pub fn plan(&self) -> Result<PartialPlan, InvalidTask> {
        let layout = self
            .policy
            .layout()
            .ok_or_else(|| InvalidTask::NotErasureCoded(self.policy.to_string()))?;
        let len_of = |index: u32| {
            layout
                .block_len(self.group_length, index as usize)
                .saturating_sub(self.offset)
                .min(layout.cell())
        };
        Ok(PartialPlan {
            cell_len: len_of(0),
            reads: self
                .local
                .iter()
                .map(|s| if s.is_zeros() { 0 } else { len_of(s.index) })
                .collect(),
        })
    }
}

/// A group no longer than its policy holds with blocks of [`MAX_BLOCK_SIZE`], and none of
/// whose internal blocks is longer: with a cell that does not divide `MAX_BLOCK_SIZE` (a
/// 3 KiB cell), a group of k blocks' worth puts up to a cell more in its first blocks (found
/// by the `partial_plan` fuzz target).
fn check_length(policy: &StoragePolicy, length: u64) -> Result<(), InvalidTask> {
    let max = policy.group_capacity(MAX_BLOCK_SIZE);
    let longest = || {
        (0..policy.width())
            .map(|i| policy.block_len(length, i))
            .max()
            .unwrap_or(0)
    };
    if length > max || longest() > MAX_BLOCK_SIZE {
        return Err(InvalidTask::GroupTooLong {
            policy: policy.to_string(),
            length,
            max,
        });
    }
    Ok(())
}

fn check_index(index: u32, width: usize) -> Result<(), InvalidTask> {
    if usize::try_from(index).map_or(true, |i| i >= width) {
        return Err(InvalidTask::IndexOutOfRange { index, width });
    }
    Ok(())
}

/// A source read from nowhere must be a block the layout leaves empty, or the rebuilt block
/// would silently take zeros for bytes.
fn check_zeros(
    policy: &StoragePolicy,
    group_length: u64,
    s: &BlockSource,
) -> Result<(), InvalidTask> {
    let length = policy.block_len(group_length, s.index as usize);
    if s.is_zeros() && length > 0 {
        return Err(InvalidTask::ZerosNotEmpty {
            index: s.index,
            length,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn source(index: u32) -> BlockSource {
        BlockSource {
            index,
            node: BlockServerId(u64::from(index) + 1),
            addr: format!("127.0.0.1:{}", 7000 + index),
            rack: "r1".into(),
        }
    }

    /// RS-6-3, 6 full stripes, block 0 lost, blocks 1..7 as sources.
    fn rs63_task() -> ReconstructionTask {
        ReconstructionTask {
            id: TaskId(1),
            group: GroupId(1 << 20),
            policy: "RS-6-3-1024k".parse().expect("policy"),
            group_length: 36 * MIB,
            index: 0,
            sources: (1..7).map(source).collect(),
            weight: 3,
            aggregate: true,
        }
    }

    fn replica_task() -> ReconstructionTask {
        ReconstructionTask {
            policy: StoragePolicy::Replicated(3),
            group_length: 5,
            sources: vec![source(0)],
            weight: 1,
            ..rs63_task()
        }
    }

    /// Rack-aware RS-6-3 over 3 racks (the benchmark's layout): the target in r1 reads its
    /// two r1 sources itself and gets one combined cell from each other rack, 2 cells across
    /// racks per stripe; rack-blind, every remote source crosses on its own. A rack with a
    /// single source sends its cell as it is, and zeros cost nothing.
    #[test]
    fn a_stripe_crosses_racks_once_per_rack_when_aggregated() {
        let mut t = rs63_task();
        for (s, rack) in t
            .sources
            .iter_mut()
            .zip(["r1", "r1", "r2", "r2", "r3", "r3"])
        {
            s.rack = rack.into();
        }
        let cells = |t: &ReconstructionTask| t.cells_by_rack("r1").into_iter().collect::<Vec<_>>();
        let reads = t.stripe_reads("r1");
        assert_eq!(reads.here.len(), 2);
        assert_eq!(
            reads.combined.keys().copied().collect::<Vec<_>>(),
            ["r2", "r3"]
        );
        assert_eq!(
            cells(&t),
            [("r1".into(), 2), ("r2".into(), 1), ("r3".into(), 1)]
        );
        t.aggregate = false;
        assert_eq!(
            cells(&t),
            [("r1".into(), 2), ("r2".into(), 2), ("r3".into(), 2)]
        );
        t.aggregate = true;
        t.sources[4].rack = "r4".into();
        t.sources[5] = BlockSource::zeros(6, "r1".into());
        assert_eq!(
            cells(&t),
            [("r1".into(), 2), ("r2".into(), 1), ("r4".into(), 1)],
            "a single source crosses as it is; zeros are free"
        );
        let copy = replica_task();
        assert_eq!(
            copy.cells_by_rack("r9").into_iter().collect::<Vec<_>>(),
            [("r1".into(), 1)]
        );
    }

    #[test]
    fn tasks_the_scheduler_builds_are_valid() {
        assert_eq!(rs63_task().validate(), Ok(()));
        assert_eq!(replica_task().validate(), Ok(()));
        // A short group: blocks 3..6 are empty and may be known zeros.
        let mut t = rs63_task();
        t.group_length = 2 * MIB + 5;
        t.sources = [1, 2, 6]
            .into_iter()
            .map(source)
            .chain((3..6).map(|i| BlockSource::zeros(i, "r1".into())))
            .collect();
        assert_eq!(t.validate(), Ok(()));
        // A replicated group of no bytes: any other index is known zeros.
        let mut t = replica_task();
        t.group_length = 0;
        t.sources = vec![BlockSource::zeros(1, String::new())];
        assert_eq!(t.validate(), Ok(()));
    }

    /// A drained server's erasure-coded block is copied from it: one source, the block
    /// itself; a lone source of another block, or of zeros, is still refused.
    #[test]
    fn an_erasure_coded_block_may_be_copied_from_a_copy_of_itself() {
        let mut t = rs63_task();
        t.sources = vec![source(0)];
        assert!(t.is_copy());
        assert_eq!(t.validate(), Ok(()));
        t.sources = vec![source(1)];
        assert!(!t.is_copy());
        assert!(t.validate().is_err());
        t.sources = vec![BlockSource::zeros(0, String::new())];
        assert!(!t.is_copy());
        assert!(t.validate().is_err());
        t.sources = vec![source(20)];
        t.index = 20;
        assert!(t.validate().is_err(), "beyond the width");
        assert!(!rs63_task().is_copy());
        assert!(replica_task().is_copy());
    }

    #[test]
    fn malformed_tasks_are_refused() {
        let refused = |f: &dyn Fn(&mut ReconstructionTask), base: ReconstructionTask| {
            let mut t = base;
            f(&mut t);
            t.validate().expect_err("refused")
        };
        let e = refused(&|t| t.index = 9, rs63_task());
        assert_eq!(e, InvalidTask::IndexOutOfRange { index: 9, width: 9 });
        let e = refused(&|t| t.index = u32::MAX, rs63_task());
        assert!(matches!(e, InvalidTask::IndexOutOfRange { .. }), "{e}");
        let e = refused(&|t| t.sources[5].index = 70_000, rs63_task());
        assert!(matches!(e, InvalidTask::IndexOutOfRange { .. }), "{e}");
        let e = refused(&|t| t.sources[5].index = 1, rs63_task());
        assert_eq!(e, InvalidTask::DuplicateSource(1));
        let e = refused(&|t| t.sources[5].index = 0, rs63_task());
        assert_eq!(e, InvalidTask::LostAmongSources(0));
        let e = refused(&|t| t.sources.truncate(5), rs63_task());
        assert!(
            matches!(
                e,
                InvalidTask::SourceCount {
                    have: 5,
                    need: 6,
                    ..
                }
            ),
            "{e}"
        );
        let e = refused(&|t| t.sources.push(source(7)), rs63_task());
        assert!(matches!(e, InvalidTask::SourceCount { have: 7, .. }), "{e}");
        let e = refused(&|t| t.sources.clear(), replica_task());
        assert!(
            matches!(
                e,
                InvalidTask::SourceCount {
                    have: 0,
                    need: 1,
                    ..
                }
            ),
            "{e}"
        );
        let e = refused(&|t| t.index = 3, replica_task());
        assert!(matches!(e, InvalidTask::IndexOutOfRange { .. }), "{e}");
        // A block with bytes cannot be read from nowhere.
        let e = refused(&|t| t.sources[0].addr.clear(), rs63_task());
        assert!(
            matches!(e, InvalidTask::ZerosNotEmpty { index: 1, .. }),
            "{e}"
        );
        let e = refused(&|t| t.sources[0].addr.clear(), replica_task());
        assert!(
            matches!(e, InvalidTask::ZerosNotEmpty { index: 0, .. }),
            "{e}"
        );
    }

    #[test]
    fn groups_longer_than_their_blocks_allow_are_refused() {
        let mut t = rs63_task();
        t.group_length = 6 * MAX_BLOCK_SIZE;
        assert_eq!(t.validate(), Ok(()));
        t.group_length += 1;
        assert!(matches!(
            t.validate(),
            Err(InvalidTask::GroupTooLong { .. })
        ));
        t.group_length = u64::MAX;
        assert!(matches!(
            t.validate(),
            Err(InvalidTask::GroupTooLong { .. })
        ));
        let mut t = replica_task();
        t.group_length = MAX_BLOCK_SIZE + 1;
        assert!(matches!(
            t.validate(),
            Err(InvalidTask::GroupTooLong { .. })
        ));
        // 3 KiB cells do not divide the largest block: 6 blocks' worth overfills block 0.
        let mut t = rs63_task();
        t.policy = "RS-6-3-3k".parse().expect("policy");
        t.group_length = 6 * MAX_BLOCK_SIZE;
        assert!(t.policy.block_len(t.group_length, 0) > MAX_BLOCK_SIZE);
        assert!(matches!(
            t.validate(),
            Err(InvalidTask::GroupTooLong { .. })
        ));
    }

    #[test]
    fn partial_cells_of_a_valid_task_are_valid_and_checked() {
        let t = rs63_task();
        let p = t.partial(MIB, vec![source(4), source(5)]);
        assert_eq!(p.all, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!((p.lost, p.offset), (0, MIB));
        assert_eq!(p.validate(), Ok(()));
        let refused = |f: &dyn Fn(&mut PartialCell)| {
            let mut p = p.clone();
            f(&mut p);
            p.validate().expect_err("refused")
        };
        assert_eq!(
            refused(&|p| p.local.push(source(7))),
            InvalidTask::LocalNotASource(7)
        );
        assert_eq!(
            refused(&|p| p.local.push(source(4))),
            InvalidTask::DuplicateSource(4)
        );
        assert_eq!(refused(&|p| p.all[0] = 2), InvalidTask::DuplicateSource(2));
        assert_eq!(refused(&|p| p.all[0] = 0), InvalidTask::LostAmongSources(0));
        assert!(matches!(
            refused(&|p| p.all[0] = 40),
            InvalidTask::IndexOutOfRange { index: 40, .. }
        ));
        assert!(matches!(
            refused(&|p| p.lost = 9),
            InvalidTask::IndexOutOfRange { index: 9, .. }
        ));
        assert!(matches!(
            refused(&|p| p.all.truncate(5)),
            InvalidTask::SourceCount { have: 5, .. }
        ));
        assert!(matches!(
            refused(&|p| p.group_length = u64::MAX),
            InvalidTask::GroupTooLong { .. }
        ));
        assert!(matches!(
            refused(&|p| p.policy = StoragePolicy::Replicated(3)),
            InvalidTask::NotErasureCoded(_)
        ));
    }

    #[test]
    fn a_partial_cell_plans_at_most_a_cell_per_buffer() {
        let t = rs63_task();
        let p = t.partial(MIB, vec![source(4), source(5)]);
        let plan = p.plan().expect("erasure-coded");
        assert_eq!(
            plan,
            PartialPlan {
                cell_len: MIB,
                reads: vec![MIB, MIB]
            }
        );
        assert_eq!(plan.bytes(6), 9 * MIB);
        // Past the blocks' end, or from known zeros, nothing is read.
        let mut p = t.partial(
            u64::MAX,
            vec![source(4), BlockSource::zeros(5, "r2".into())],
        );
        assert_eq!(
            p.plan().expect("plan"),
            PartialPlan {
                cell_len: 0,
                reads: vec![0, 0]
            }
        );
        // A short last stripe: block 1 holds half a cell there.
        p.group_length = 6 * MIB + MIB + MIB / 2;
        p.offset = MIB;
        p.local = vec![source(1), source(2)];
        assert_eq!(
            p.plan().expect("plan"),
            PartialPlan {
                cell_len: MIB,
                reads: vec![MIB / 2, 0]
            }
        );
        p.policy = StoragePolicy::Replicated(3);
        assert!(matches!(p.plan(), Err(InvalidTask::NotErasureCoded(_))));
    }

    #[test]
    fn an_outcome_is_ok_without_an_error() {
        let mut o = TaskOutcome {
            task_id: TaskId(1),
            group: GroupId(2),
            index: 3,
            error: None,
        };
        assert!(o.ok());
        o.error = Some("source died".into());
        assert!(!o.ok());
    }
}
