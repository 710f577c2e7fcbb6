//! What the active makes of a blockserver's heartbeat, with no RPC in it: the heartbeat
//! recorded, its finished tasks counted, and the orders of the reply (new tasks, the
//! server's share of the budgets, tasks to cancel). The gRPC handler
//! (`service::blockservers`) adds the authentication, the block tokens and the wire
//! conversion; the fleet simulator calls these directly for thousands of simulated servers.

use raftfs_core::id::{BlockServerId, TaskId};
use raftfs_core::reconstruction::{ReconstructionTask, TaskOutcome, Throttle};

use crate::namespace::blocks::{Generation, GroupId};
use crate::registry::{Registry, RegistryError, Storage};

use super::scheduler::Scheduler;

/// What the active tells one blockserver in a heartbeat reply, beside the deletions.
#[derive(Debug, Clone, Default)]
pub struct Orders {
    /// Blocks to rebuild.
    pub tasks: Vec<ReconstructionTask>,
    /// The server's share of the budgets.
    pub throttle: Throttle,
    /// Running tasks to stop.
    pub cancel: Vec<TaskId>,
}

/// Records `node`'s heartbeat (its storage and xmits) and the outcomes of its tasks that
/// ended; returns the blocks it should delete. Every member records heartbeats (the
/// registry is soft state every member keeps); only the active has tasks to count.
pub fn receive(
    registry: &Registry,
    scheduler: &Scheduler,
    node: BlockServerId,
    storage: Storage,
    finished: &[TaskOutcome],
) -> Result<Vec<(GroupId, u32, Generation)>, RegistryError> {
    let delete = registry.heartbeat(node, storage)?;
    scheduler.finished(node, finished);
    Ok(delete)
}

/// The orders of the active of `term` for `node`, which carries `xmits` now.
pub fn orders(
    registry: &Registry,
    scheduler: &Scheduler,
    node: BlockServerId,
    xmits: u32,
    term: u64,
) -> Orders {
    scheduler.enter_term(term);
    let snapshot = registry.snapshot();
    // Judged before this reply's tasks count as the server's: xmits beyond this active's
    // own tasks are another nameservice's work.
    let foreign = xmits > scheduler.own_weight(node);
    Orders {
        tasks: scheduler.assign_on(node, xmits, &snapshot),
        throttle: scheduler.throttle_on(node, foreign, &snapshot),
        cancel: scheduler.take_cancellations(node),
    }
}
