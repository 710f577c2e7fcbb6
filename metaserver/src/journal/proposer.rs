//! The proposer: packs the client mutations waiting at a moment into one Raft entry (group
//! commit, bounded in count and in bytes), with a bounded number of entries in flight. The leader's clock and lease length
//! are fixed here, once per entry, and carried in it.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::{Batch, MemberId, Proposal, Raft};
use crate::namespace::{ApplyCtx, NsError, OpOutput};

/// Why a proposal was not applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// This node is not the leader; the leader, when known.
    #[error("not the active metaserver")]
    NotLeader { leader: Option<(MemberId, String)> },
    /// Raft stopped or failed on this node.
    #[error("raft unavailable: {0}")]
    Unavailable(String),
}

/// A mutation's outcome: the log index of its entry, and its recorded result.
pub type Applied = (u64, Result<OpOutput, NsError>);

struct Pending {
    proposal: Proposal,
    reply: oneshot::Sender<Result<Applied, ProposeError>>,
}

/// Tuning of the proposer.
#[derive(Debug, Clone, Copy)]
pub struct ProposerConfig {
    /// Most proposals packed into one entry.
    pub max_batch: usize,
    /// Most bytes of operations (by `Op::size_bound`) packed into one entry; an entry holds
    /// at least one operation whatever its size.
    pub max_batch_bytes: usize,
    /// Most entries proposed and not yet applied.
    pub max_in_flight: usize,
    /// Lease length written into entries.
    pub lease: Duration,
}

/// Handle to the proposer task.
#[derive(Debug, Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Pending>,
    /// While true, no new entry is proposed (a leadership transfer is letting the target's
    /// log catch up with ours); proposals wait in the queue, nothing is refused.
    held: Arc<watch::Sender<bool>>,
}

/// Holds new entries back until dropped (see [`Proposer::hold`]).
#[derive(Debug)]
pub struct Hold {
    held: Arc<watch::Sender<bool>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.held.send_replace(false);
    }
}

/// The wall clock, ms since the epoch (what the leader writes into entries).
pub fn now_ms() -> u64 {
    raftfs_runtime::simulation::now_ms()
}

impl Proposer {
    /// Starts the proposer task for `raft`.
    /// `batch_sizes` receives the number of mutations packed into each entry (the group
    /// commit factor: one leader fsync serves that many clients); `entry_seconds` how long
    /// each entry took from its proposal to its applied result.
    pub fn spawn(
        raft: Raft,
        config: ProposerConfig,
        batch_sizes: Histogram,
        entry_seconds: Histogram,
    ) -> Self {
        let (tx, rx) = mpsc::channel(
            config
                .max_batch
                .saturating_mul(config.max_in_flight)
                .max(64),
        );
        let held = Arc::new(watch::Sender::new(false));
        tokio::spawn(run(
            raft,
            config,
            rx,
            held.subscribe(),
            batch_sizes,
            entry_seconds,
        ));
        Self { tx, held }
    }

    /// Stops proposing new entries until the returned guard is dropped. Entries already
    /// proposed go on; queued mutations wait (and, if leadership moves meanwhile, are answered
    /// `NotActive` so that their clients follow the new active).
    pub fn hold(&self) -> Hold {
        self.held.send_replace(true);
        Hold {
            held: self.held.clone(),
        }
    }

    /// Proposes one mutation and waits until it is applied.
    pub async fn propose(&self, proposal: Proposal) -> Result<Applied, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { proposal, reply })
            .await
            .map_err(|_| ProposeError::Unavailable("proposer stopped".into()))?;
        rx.await
            .map_err(|_| ProposeError::Unavailable("proposal dropped".into()))?
    }
}

async fn run(
    raft: Raft,
    config: ProposerConfig,
    mut rx: mpsc::Receiver<Pending>,
    mut held: watch::Receiver<bool>,
    batch_sizes: Histogram,
    entry_seconds: Histogram,
) {
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let lease_ms = u64::try_from(config.lease.as_millis()).unwrap_or(u64::MAX);
    let mut last_now = 0u64;
    // A proposal that did not fit in the last entry's byte bound: first in the next.
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        if held.wait_for(|h| !*h).await.is_err() {
            return;
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // While we waited for a slot, more proposals queued up: they ride in the same entry.
        // Bounded by count and by bytes (each operation's size bound, checked at the edge to
        // be at most `MAX_OP_BYTES`), so that an entry, and an AppendEntries of
        // `max-entries-per-append` of them, stays within what the Raft service accepts.
        let mut bytes = first.proposal.op.size_bound();
        let mut pending = vec![first];
        while pending.len() < config.max_batch {
            let Ok(p) = rx.try_recv() else {
                break;
            };
            let size = p.proposal.op.size_bound();
            if bytes.saturating_add(size) > config.max_batch_bytes {
                carried = Some(p);
                break;
            }
            bytes = bytes.saturating_add(size);
            pending.push(p);
        }
        batch_sizes.observe(pending.len() as f64);
        // Time never runs backwards within one leader's entries.
        last_now = last_now.max(now_ms());
        let ctx = ApplyCtx {
            now_ms: last_now,
            lease_ms,
        };
        let (proposals, replies): (Vec<_>, Vec<_>) =
            pending.into_iter().map(|p| (p.proposal, p.reply)).unzip();
        let raft = raft.clone();
        let entry_seconds = entry_seconds.clone();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let outcome = raft.client_write(Batch { ctx, proposals }).await;
            drop(permit);
            if outcome.is_ok() {
                entry_seconds.observe(start.elapsed().as_secs_f64());
            }
            match outcome {
                Ok(resp) => {
                    let index = resp.log_id.index;
                    let mut results = resp.data.into_iter();
                    for reply in replies {
                        let r = results.next().map(|r| (index, r)).ok_or_else(|| {
                            ProposeError::Unavailable("missing result in entry response".into())
                        });
                        let _ = reply.send(r);
                    }
                }
                Err(e) => {
                    let err = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                            ProposeError::NotLeader {
                                leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                            }
                        }
                        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                            ProposeError::Unavailable(c.to_string())
                        }
                        RaftError::Fatal(f) => ProposeError::Unavailable(f.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        });
    }
}
