//! Wire types to domain types, once, on the receiving side: a block named by a peer becomes
//! a [`BlockId`] here or the request is refused; a reconstruction task from a heartbeat reply
//! and a partial cell asked by another blockserver become `raftfs_core::reconstruction`'s
//! validated types (policy parsed under the caps, indices and sizes checked before anything
//! is read or allocated). The few domain -> wire conversions (reports, outcomes, a partial
//! cell asked of a peer) are here too.

use raftfs_core::id::{BlockServerId, GroupId, TaskId};
use raftfs_core::reconstruction::{
    BlockSource, ByteBudget, InvalidTask, PartialCell, ReconstructionTask, TaskOutcome, Throttle,
};
use raftfs_proto as pb;

use crate::error::BlockError;
use crate::store::{BlockId, Generation};

/// The block of pool `pool` a data request names (the pool is the one its token names).
pub fn block_ref(pool: u64, r: Option<&pb::BlockRef>) -> Result<BlockId, BlockError> {
    let r = r.ok_or_else(|| BlockError::InvalidArgument("no block named".into()))?;
    block_id(pool, r.group, r.index)
}

/// A block of pool `pool` from its group and its index on the wire (a u32 there; at most
/// u16 here, far beyond any erasure-coding width).
pub fn block_id(pool: u64, group: u64, index: u32) -> Result<BlockId, BlockError> {
    let index = u16::try_from(index)
        .map_err(|_| BlockError::InvalidArgument(format!("block index {index} out of range")))?;
    Ok(BlockId { pool, group, index })
}

/// A block as block reports carry it.
pub fn reported(block: BlockId, length: u64, generation: Generation) -> pb::ReportedBlock {
    pb::ReportedBlock {
        group: block.group,
        index: u32::from(block.index),
        length,
        generation: generation.get(),
    }
}

/// A reconstruction task from the active, validated ([`ReconstructionTask::validate`]).
pub fn reconstruction_task(t: pb::ReconstructionTask) -> Result<ReconstructionTask, InvalidTask> {
    let task = ReconstructionTask {
        id: TaskId(t.task_id),
        group: GroupId(t.group),
        policy: t.policy.parse()?,
        group_length: t.group_length,
        index: t.index,
        sources: t.sources.into_iter().map(block_source).collect(),
        weight: t.weight,
        aggregate: t.aggregate,
    };
    task.validate()?;
    Ok(task)
}

/// A rack's part of a lost cell, as another blockserver asks for it, validated
/// ([`PartialCell::validate`]).
pub fn partial_cell(r: pb::PartialRequest) -> Result<PartialCell, InvalidTask> {
    let cell = PartialCell {
        group: GroupId(r.group),
        policy: r.policy.parse()?,
        group_length: r.group_length,
        lost: r.lost,
        offset: r.offset,
        all: r.all,
        local: r.local.into_iter().map(block_source).collect(),
    };
    cell.validate()?;
    Ok(cell)
}

/// A partial cell this server asks of a peer.
pub fn partial_request(c: &PartialCell) -> pb::PartialRequest {
    pb::PartialRequest {
        group: c.group.into(),
        policy: c.policy.to_string(),
        group_length: c.group_length,
        lost: c.lost,
        offset: c.offset,
        all: c.all.clone(),
        local: c
            .local
            .iter()
            .map(|s| pb::BlockLocation {
                index: s.index,
                node_id: s.node.get(),
                addr: s.addr.clone(),
                rack: s.rack.clone(),
            })
            .collect(),
        token: Vec::new(),
    }
}

fn block_source(l: pb::BlockLocation) -> BlockSource {
    BlockSource {
        index: l.index,
        node: BlockServerId(l.node_id),
        addr: l.addr,
        rack: l.rack,
    }
}

/// This server's budgets from a heartbeat reply. Nothing to refuse: a budget of 0 is none.
pub fn throttle(t: pb::Throttle) -> Throttle {
    Throttle {
        node_bytes_per_sec: t.node_bytes_per_sec,
        max_tasks: t.max_tasks,
        budgets: t
            .budgets
            .into_iter()
            .map(|b| ByteBudget {
                name: b.name,
                from_racks: b.from_racks,
                bytes_per_sec: b.bytes_per_sec,
            })
            .collect(),
    }
}

/// A task's outcome, for the next heartbeat to the metaserver that sent the task.
/// The tasks an active cancelled, as its heartbeat reply names them.
pub fn task_ids(ids: &[u64]) -> Vec<TaskId> {
    ids.iter().copied().map(TaskId).collect()
}

pub fn task_outcome(o: &TaskOutcome) -> pb::TaskOutcome {
    pb::TaskOutcome {
        task_id: o.task_id.get(),
        group: o.group.into(),
        index: o.index,
        ok: o.ok(),
        error: o.error.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_out_of_range_or_missing_are_refused() {
        assert!(matches!(
            block_ref(0, None),
            Err(BlockError::InvalidArgument(_))
        ));
        let r = pb::BlockRef {
            group: 3,
            index: 70_000,
        };
        assert!(matches!(
            block_ref(0, Some(&r)),
            Err(BlockError::InvalidArgument(_))
        ));
        let ok = block_id(5, 3, 8).expect("valid");
        assert_eq!((ok.pool, ok.group, ok.index), (5, 3, 8));
        let r = reported(ok, 5, Generation(3));
        assert_eq!((r.index, r.generation), (8, 3));
    }

    fn task() -> pb::ReconstructionTask {
        pb::ReconstructionTask {
            task_id: 7,
            group: 1 << 20,
            policy: "RS-3-2-1024k".into(),
            group_length: 3 << 20,
            index: 0,
            sources: (1..4)
                .map(|index| pb::BlockLocation {
                    index,
                    node_id: u64::from(index),
                    addr: format!("127.0.0.1:{}", 7000 + index),
                    rack: "r1".into(),
                })
                .collect(),
            weight: 1,
            aggregate: true,
            token: Vec::new(),
        }
    }

    #[test]
    fn a_task_from_the_wire_is_parsed_and_validated_once() {
        let t = reconstruction_task(task()).expect("valid");
        assert_eq!((t.id, t.index, t.sources.len()), (TaskId(7), 0, 3));
        assert_eq!(t.policy.width(), 5);
        assert_eq!(t.sources[2].node, BlockServerId(3));
        // A policy past the caps, an unknown one, a group past the block cap, a lost block
        // outside the group: refused, typed, before anything is allocated.
        for (policy, length, index) in [
            ("RS-300-3-1024k", 3 << 20, 0),
            ("RS-6-3-8192k", 3 << 20, 0),
            ("LRC-6-2-1024k", 3 << 20, 0),
            ("RS-3-2-1024k", u64::MAX, 0),
            ("RS-3-2-1024k", 3 << 20, 70_000),
        ] {
            let mut bad = task();
            bad.policy = policy.into();
            bad.group_length = length;
            bad.index = index;
            assert!(
                reconstruction_task(bad).is_err(),
                "{policy} {length} {index}"
            );
        }
        let mut bad = task();
        bad.policy = "RS-300-3-1024k".into();
        assert!(matches!(
            reconstruction_task(bad),
            Err(InvalidTask::Policy(_))
        ));
    }

    #[test]
    fn partial_cells_round_trip_and_bad_ones_are_refused() {
        let t = reconstruction_task(task()).expect("valid");
        let cell = t.partial(1 << 20, t.sources[1..].to_vec());
        let wire = partial_request(&cell);
        assert_eq!(partial_cell(wire.clone()), Ok(cell));
        let mut bad = wire.clone();
        bad.all.push(4);
        assert!(matches!(
            partial_cell(bad),
            Err(InvalidTask::SourceCount { .. })
        ));
        let mut bad = wire;
        bad.policy = "REPLICATED-3".into();
        assert!(matches!(
            partial_cell(bad),
            Err(InvalidTask::NotErasureCoded(_))
        ));
    }

    #[test]
    fn outcomes_and_throttles_cross_the_wire_unchanged() {
        let failed = TaskOutcome {
            task_id: TaskId(1),
            group: GroupId(2),
            index: 3,
            error: Some("source died".into()),
        };
        let w = task_outcome(&failed);
        assert!(!w.ok && w.error == "source died" && w.task_id == 1);
        assert!(
            task_outcome(&TaskOutcome {
                error: None,
                ..failed
            })
            .ok
        );
        let t = throttle(pb::Throttle {
            max_tasks: 8,
            node_bytes_per_sec: 5,
            budgets: vec![pb::ByteBudget {
                name: "rack r1>r2".into(),
                from_racks: vec!["r1".into()],
                bytes_per_sec: 9,
            }],
        });
        assert_eq!(t.node_bytes_per_sec, 5);
        assert_eq!(t.budgets[0].from_racks, vec!["r1".to_owned()]);
    }
}
