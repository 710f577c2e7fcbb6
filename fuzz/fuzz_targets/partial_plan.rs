//! Reconstruction work a blockserver receives from a peer (`BlockData.Partial`) or from the
//! active (a task in a heartbeat reply): prost decode -> `blockserver::convert`
//! (`partial_cell`, `reconstruction_task`: the policy parsed under the caps, indices and
//! lengths checked by `core/src/reconstruction.rs`) -> the sizes of the buffers the worker
//! will allocate (`PartialCell::plan`, which `reconstruction/worker.rs` sizes them by).
//!
//! Properties: nothing panics; anything accepted plans a bounded number of bytes whatever
//! policy, group length and offset the sender named: every cell at most one cell of the
//! policy (at most 4 MiB), every read at most a cell, at most k reads, so the whole decode
//! holds at most (2k + 1) cells; a task accepted rebuilds a block of at most 2 GiB, and the
//! partial cells it asks of other racks are themselves accepted. When the plan is small,
//! the worker's decode runs on buffers of exactly the planned sizes and must succeed (the
//! codec takes every k of k + m within the caps).
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use raftfs_blockserver::convert;
use raftfs_core::policy::{MAX_BLOCK_SIZE, MAX_CELL_KIB, MAX_GROUP_WIDTH};
use raftfs_core::reconstruction::PartialCell;
use raftfs_fuzz::{Num, PolicyName};
use raftfs_proto as pb;

/// The most a partial cell's decode may hold: 2k + 1 cells of the largest size.
const MAX_PLAN_BYTES: u64 = (2 * MAX_GROUP_WIDTH as u64 + 1) * (MAX_CELL_KIB as u64 * 1024);

#[derive(Debug, Arbitrary)]
enum Input {
    WirePartial(Vec<u8>),
    Partial {
        policy: PolicyName,
        group_length: Num,
        lost: u8,
        offset: Num,
        all: Vec<u8>,
        local: Vec<(u8, bool)>,
    },
    WireTask(Vec<u8>),
    Task {
        policy: PolicyName,
        group_length: Num,
        index: u8,
        sources: Vec<(u8, bool, u8)>,
        offset: Num,
    },
}

fn location(index: u8, zeros: bool, rack: u8) -> pb::BlockLocation {
    pb::BlockLocation {
        index: u32::from(index),
        node_id: u64::from(index) + 1,
        addr: if zeros {
            String::new()
        } else {
            format!("127.0.0.1:{}", 7000 + u16::from(index))
        },
        rack: format!("r{}", rack % 3),
    }
}

/// A partial cell was accepted: its plan must be bounded, and, when small, decodable.
fn check_plan(cell: &PartialCell) {
    let plan = cell.plan().expect("an accepted partial cell has a plan");
    let policy_cell = cell.policy.cell_bytes().expect("erasure-coded");
    assert!(plan.cell_len <= policy_cell && policy_cell <= u64::from(MAX_CELL_KIB) * 1024);
    assert_eq!(plan.reads.len(), cell.local.len());
    let k = cell.policy.data_blocks();
    assert!(cell.local.len() <= k && cell.all.len() == k);
    for r in &plan.reads {
        assert!(*r <= plan.cell_len, "read {r} > cell {}", plan.cell_len);
    }
    let bytes = plan.bytes(cell.all.len());
    assert!(bytes <= (2 * k as u64 + 1) * plan.cell_len && bytes <= MAX_PLAN_BYTES);
    if bytes > 1 << 16 {
        return;
    }
    // The worker's decode, on buffers of the planned sizes (reads padded to the cell).
    let codec = raftfs_codec::for_policy(&cell.policy)
        .expect("a codec for every accepted policy")
        .expect("erasure-coded");
    let plen = plan.cell_len as usize;
    let mut cells: Vec<Option<Vec<u8>>> = vec![None; cell.policy.width()];
    for i in &cell.all {
        cells[*i as usize] = Some(vec![0; plen]);
    }
    for (s, n) in cell.local.iter().zip(&plan.reads) {
        let mut bytes: Vec<u8> = (0..*n).map(|b| (b as u8) ^ (s.index as u8)).collect();
        bytes.resize(plen, 0);
        cells[s.index as usize] = Some(bytes);
    }
    let refs: Vec<Option<&[u8]>> = cells.iter().map(|c| c.as_deref()).collect();
    let mut out = vec![0u8; plen];
    codec
        .decode(&refs, &[cell.lost as usize], &mut [out.as_mut_slice()])
        .expect("the decode of an accepted partial cell");
}

fuzz_target!(|input: Input| {
    match input {
        Input::WirePartial(bytes) => {
            if let Ok(req) = pb::PartialRequest::decode(bytes.as_slice())
                && let Ok(cell) = convert::partial_cell(req)
            {
                check_plan(&cell);
            }
        }
        Input::Partial {
            policy,
            group_length,
            lost,
            offset,
            all,
            local,
        } => {
            let req = pb::PartialRequest {
                group: 1,
                policy: policy.0,
                group_length: group_length.0,
                lost: u32::from(lost % 40),
                offset: offset.0,
                all: all.iter().map(|i| u32::from(i % 40)).collect(),
                local: local.iter().map(|(i, z)| location(i % 40, *z, 0)).collect(),
                token: Vec::new(),
            };
            let req = pb::PartialRequest::decode(req.encode_to_vec().as_slice()).expect("decodes");
            if let Ok(cell) = convert::partial_cell(req) {
                check_plan(&cell);
            }
        }
        Input::WireTask(bytes) => {
            if let Ok(t) = pb::ReconstructionTask::decode(bytes.as_slice())
                && let Ok(task) = convert::reconstruction_task(t)
            {
                assert!(
                    task.policy
                        .block_len(task.group_length, task.index as usize)
                        <= MAX_BLOCK_SIZE
                );
            }
        }
        Input::Task {
            policy,
            group_length,
            index,
            sources,
            offset,
        } => {
            let t = pb::ReconstructionTask {
                task_id: 1,
                group: 1,
                policy: policy.0,
                group_length: group_length.0,
                index: u32::from(index % 40),
                sources: sources
                    .iter()
                    .map(|(i, z, r)| location(i % 40, *z, *r))
                    .collect(),
                weight: 1,
                aggregate: true,
                token: Vec::new(),
            };
            let t = pb::ReconstructionTask::decode(t.encode_to_vec().as_slice()).expect("decodes");
            let Ok(task) = convert::reconstruction_task(t) else {
                return;
            };
            let width = task.policy.width();
            assert!((task.index as usize) < width);
            assert!(
                task.policy
                    .block_len(task.group_length, task.index as usize)
                    <= MAX_BLOCK_SIZE
            );
            for s in &task.sources {
                assert!((s.index as usize) < width);
                assert!(
                    task.policy.block_len(task.group_length, s.index as usize) <= MAX_BLOCK_SIZE
                );
            }
            // A decoded block (not one copied from a copy of itself, as a drained server's
            // is): what the worker asks of each rack, the rack's own sources.
            if task.policy.layout().is_some() && !task.is_copy() {
                for rack in ["r0", "r1", "r2"] {
                    let local = task
                        .sources
                        .iter()
                        .filter(|s| s.rack == rack)
                        .cloned()
                        .collect();
                    let cell = task.partial(offset.0, local);
                    assert_eq!(cell.validate(), Ok(()), "a valid task's partial cell");
                    check_plan(&cell);
                }
            }
        }
    }
});
