//! The reclaim worker (issue #15): a recursive delete detaches its subtree in one small entry
//! (`raftfs_core::namespace::reclaim`); this worker of the active then removes the detached
//! records in `Op::Reclaim` entries of at most `namespace.reclaim-budget` records each, one
//! entry at a time, until none is left. Each entry is applied by every member alike, so the
//! memory one apply takes is bounded by the budget, not by the tree. A new active's worker
//! finds what its predecessor left (the detached subtrees are replicated state) and goes on.
//! The internal blocks of the groups it removes become garbage that the garbage sweep finds
//! on the blockservers and their heartbeats delete.

use crate::error::MetaError;
use crate::journal::{CallId, ClientId, Proposal};
use crate::namespace::{Op, OpOutput, reclaim};
use crate::node::MetaNode;
use crate::observer::Role;
use raftfs_runtime::Outcome;

/// Most reclaim entries one round proposes: a round's items then show progress in the
/// worker's status while a large tree is reclaimed, round after round.
const STEPS_PER_ROUND: usize = 16;

/// One round: reclaims entry after entry while anything is detached, up to
/// [`STEPS_PER_ROUND`] entries. Returns the inodes removed.
pub async fn reclaim_round(node: &MetaNode, budget: u64) -> Result<Outcome, MetaError> {
    if node.role() != Role::Active {
        return Ok(Outcome::Skipped);
    }
    let mut removed = 0u64;
    for _ in 0..STEPS_PER_ROUND {
        let pending = node
            .read_local(|kv| reclaim::pending(kv).map_err(MetaError::from))
            .await?;
        if !pending {
            break;
        }
        let proposal = Proposal {
            client: ClientId::default(),
            call_id: CallId::UNCACHED,
            op: Op::Reclaim { budget },
            access: None,
        };
        let (index, result) = node.proposer.propose(proposal).await?;
        match result {
            Ok(OpOutput::Removed(n)) => {
                removed = removed.saturating_add(n);
                tracing::debug!(index, removed = n, "reclaim step applied");
            }
            Ok(other) => {
                return Err(MetaError::Internal(format!(
                    "a reclaim step returned {other:?}"
                )));
            }
            Err(source) => {
                return Err(MetaError::Namespace {
                    source,
                    state_id: index,
                });
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "detached subtrees reclaimed");
    }
    Ok(Outcome::Done { items: removed })
}
