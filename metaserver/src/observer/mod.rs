//! Observers: non-voting Raft learners that serve reads (DESIGN §4, §5).
//!
//! An observer is an openraft learner: the active replicates every entry to it as it does to
//! the voters, and it applies each entry as soon as it learns that it is committed (no
//! periodic tailing as HDFS's standby edit-log tailer does). It never votes, so adding
//! observers scales reads without slowing commits.
//!
//! The state-ID rule is enforced here: a read carries the highest state ID its client has
//! seen, and an observer answers only from a state at least that new. Until it has applied
//! that far it waits on its applied-index watch, up to a bound, then answers
//! `ObserverBehind` and the client goes elsewhere. Because every answer carries the state ID
//! it reflects and the client keeps the maximum, one client object gets read-your-own-writes
//! and monotonic reads whichever members it talks to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{RaftMetrics, ServerState};
use tokio::sync::watch;

use crate::error::MetaError;
use crate::journal::{BasicNodeMeta, MemberId};

/// What a member is, for a client request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The Raft leader: serves writes, linearizable reads and msync.
    Active,
    /// A voter that is not the leader (or a candidate): serves no client request.
    Standby,
    /// A learner in the membership: serves reads under the state-ID rule.
    Observer,
    /// Not (or no longer) in the membership, or shut down: serves nothing.
    Outside,
}

impl Role {
    /// This node's role, from its Raft metrics.
    pub fn of(id: MemberId, m: &RaftMetrics<MemberId, BasicNodeMeta>) -> Role {
        let membership = m.membership_config.membership();
        let is_member = membership.get_node(&id).is_some();
        let is_voter = membership.voter_ids().any(|v| v == id);
        match m.state {
            ServerState::Leader if m.current_leader == Some(id) => Role::Active,
            ServerState::Shutdown => Role::Outside,
            _ if !is_member => Role::Outside,
            ServerState::Learner if !is_voter => Role::Observer,
            _ => Role::Standby,
        }
    }
}

/// Waits until the applied index reaches `wanted`, at most `bound`; returns the applied index.
pub async fn wait_applied(
    mut applied: watch::Receiver<u64>,
    wanted: u64,
    bound: Duration,
) -> Result<u64, MetaError> {
    let now = *applied.borrow();
    if now >= wanted {
        return Ok(now);
    }
    let waited = tokio::time::timeout(bound, applied.wait_for(|a| *a >= wanted))
        .await
        .map(|r| r.map(|a| *a));
    match waited {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(_)) => Err(MetaError::Unavailable("state machine stopped".into())),
        Err(_) => Err(MetaError::ObserverBehind {
            applied: *applied.borrow(),
            wanted,
        }),
    }
}

/// The newest log index this member has heard the active speak of (the leader's commit index
/// or the last entry it sent), to report how far behind this member's state machine is.
#[derive(Debug, Default)]
pub struct LeaderPosition {
    index: AtomicU64,
}

impl LeaderPosition {
    /// Records what one AppendEntries message said.
    pub fn heard(&self, index: u64) {
        self.index.fetch_max(index, Ordering::Relaxed);
    }

    /// The newest index heard of.
    pub fn get(&self) -> u64 {
        self.index.load(Ordering::Relaxed)
    }

    /// Entries known to exist that are not applied here yet.
    pub fn lag(&self, applied: u64) -> u64 {
        self.get().saturating_sub(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_at_once_when_applied_far_enough() {
        let (tx, rx) = watch::channel(10);
        assert_eq!(wait_applied(rx, 7, Duration::ZERO).await.ok(), Some(10));
        drop(tx);
    }

    #[tokio::test]
    async fn waits_for_the_state_the_client_has_seen() {
        let (tx, rx) = watch::channel(3);
        let waiter = tokio::spawn(wait_applied(rx, 5, Duration::from_secs(30)));
        tx.send_replace(4);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        tx.send_replace(6);
        assert_eq!(waiter.await.ok().and_then(Result::ok), Some(6));
    }

    #[tokio::test]
    async fn behind_after_the_bound() {
        let (_tx, rx) = watch::channel(3);
        match wait_applied(rx, 5, Duration::from_millis(50)).await {
            Err(MetaError::ObserverBehind { applied, wanted }) => {
                assert_eq!((applied, wanted), (3, 5));
            }
            other => panic!("expected ObserverBehind, got {other:?}"),
        }
    }

    #[test]
    fn lag_never_underflows() {
        let p = LeaderPosition::default();
        p.heard(10);
        p.heard(4);
        assert_eq!(p.get(), 10);
        assert_eq!(p.lag(12), 0);
        assert_eq!(p.lag(7), 3);
    }
}
