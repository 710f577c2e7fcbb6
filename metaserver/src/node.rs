//! The context every part of one metaserver shares: the gRPC services, the active's workers
//! (redundancy, lease recovery), membership and metrics. Built once by [`crate::server`],
//! which owns it; its fields are crate-private, and the rules a request is checked against
//! (is this the active, may it read, has it applied what the client saw) are methods here,
//! written once.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;

use crate::config::BlockTuning;
use crate::error::MetaError;
use crate::journal::proposer::Proposer;
use crate::journal::state_machine::SmShared;
use crate::journal::{MemberId, Raft};
use crate::metrics::Metrics;
use crate::observer::{self, LeaderPosition, Role};
use crate::redundancy::scheduler::{Scheduler, SchedulerConfig};
use crate::registry::Registry;

/// What every part of one metaserver shares.
#[derive(Clone)]
pub struct MetaNode {
    pub(crate) id: MemberId,
    pub(crate) advertise_addr: String,
    pub(crate) raft: Raft,
    pub(crate) sm: Arc<SmShared>,
    pub(crate) proposer: Proposer,
    pub(crate) metrics: Arc<Metrics>,
    /// When this member may answer reads and take writes (DESIGN §4, §5).
    pub(crate) rules: ServingRules,
    /// How far the active's log is known to reach (for the apply-lag metric).
    pub(crate) leader_position: Arc<LeaderPosition>,
    /// How connections to other metaservers are opened (source address).
    pub(crate) dialer: crate::journal::network::Dialer,
    /// Who may make which class of call (DESIGN §9).
    pub(crate) authorizer: raftfs_core::identity::Authorizer,
    /// Taken off the mode of everything created (`[permissions] umask`).
    pub(crate) umask: u16,
    /// Block access tokens' lifetime and key roll (`[block-tokens]`).
    pub(crate) tokens: crate::config::BlockTokens,
    /// This member's nameservice (DESIGN §10; none: the unnamed one): its tokens name that
    /// pool, and only blockservers registering for it are taken.
    pub(crate) nameservice: Option<raftfs_core::federation::NameserviceId>,
    /// The keys as heartbeat replies hand them out (read at most once a second).
    pub(crate) key_cache: Arc<crate::block_tokens::KeyCache>,
    /// The blockservers, their blocks and the work on them.
    pub(crate) blocks: BlockState,
    /// The newest log id known committed: the active's read index.
    pub(crate) committed: crate::journal::log_store::Committed,
    /// The end of the active's log when it first served a read in its term.
    pub(crate) term_floor: Arc<TermFloor>,
    /// The statuses of this member's background workers (owned by the server).
    pub(crate) workers: raftfs_runtime::WorkerStatuses,
    /// Threads of their own for long reads (`fsck` pages, content summaries), apart from the
    /// blocking pool the log's writes use.
    pub(crate) long_reads: raftfs_runtime::ReadPool,
}

/// What a metaserver knows of the blockservers and does with them: soft state, rebuilt from
/// registrations, heartbeats and block reports after a restart or failover, never journaled
/// (DESIGN §6, §7).
#[derive(Clone, Debug)]
pub struct BlockState {
    /// The blockservers and the internal blocks each reported.
    pub(crate) registry: Arc<Registry>,
    /// The active's reconstruction work (DESIGN §7): queues, tasks in flight, budgets.
    pub(crate) scheduler: Arc<Scheduler>,
    /// Block sizes, liveness and reconstruction limits from the configuration.
    pub(crate) tuning: BlockTuning,
    /// What the last whole pass of the redundancy scan found (the operator pages' census).
    pub(crate) last_pass: Arc<std::sync::Mutex<Option<crate::redundancy::PassReport>>>,
    /// The blockservers' rebuild reads by rack, from their heartbeats (the operator pages').
    pub(crate) measured: Arc<crate::redundancy::measured::MeasuredReads>,
}

impl BlockState {
    /// An empty registry and idle scheduler, tuned by the configuration.
    pub fn new(tuning: BlockTuning) -> Self {
        Self {
            registry: Arc::new(
                Registry::new(Duration::from_secs(tuning.dead_after_secs))
                    .with_maintenance_min_live(tuning.maintenance_min_live),
            ),
            scheduler: Arc::new(Scheduler::new(SchedulerConfig {
                max_streams: tuning.max_streams,
                xmits_weight: tuning.xmits_weight,
                task_timeout: Duration::from_secs(tuning.reconstruction_timeout_secs),
                rack_aware: tuning.rack_aware_reconstruction,
            })),
            tuning,
            last_pass: Arc::default(),
            measured: Arc::default(),
        }
    }

    pub(crate) fn set_last_pass(&self, report: Option<crate::redundancy::PassReport>) {
        *self.last_pass.lock().unwrap_or_else(|p| p.into_inner()) = report;
    }

    /// What the last whole pass of the redundancy scan found, if one ended on this member
    /// since it became the active.
    pub fn last_pass(&self) -> Option<crate::redundancy::PassReport> {
        self.last_pass
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// When a member may answer reads and take writes, from its configuration (DESIGN §4, §5).
#[derive(Clone, Copy, Debug)]
pub struct ServingRules {
    /// A leader that has not heard from a quorum for this long stops serving reads (it may
    /// have been replaced): shorter than the election timeout.
    pub quorum_lease: Duration,
    /// A leader that has not heard from a quorum for this long (an election timeout) refuses
    /// writes at once: they could not commit, and the client should look for the new active
    /// instead of waiting out its RPC timeout (openraft 0.9 has no check-quorum step-down).
    pub write_quorum_timeout: Duration,
    /// How long a read waits for this member to apply the state its client has seen.
    pub read_wait: Duration,
    /// Debug builds only: serve observer reads without the state-ID wait, so that tests can
    /// show that their checks catch the stale reads this lets through.
    pub skip_state_id_wait: bool,
    /// Debug builds only: the active serves reads without its quorum lease (the simulation
    /// shows that it finds the stale reads of a deposed active).
    pub skip_read_lease: bool,
}

/// The end of the active's log when it first served a read in a term: a floor under its
/// read index for the rest of that term (see [`MetaNode::read_index`]).
#[derive(Debug, Default)]
pub struct TermFloor(std::sync::Mutex<TermEnd>);

#[derive(Debug, Default, Clone, Copy)]
struct TermEnd {
    term: u64,
    last_log: u64,
}

impl TermFloor {
    /// The floor of `term`, recorded as `last_log` if this is the term's first read. A term
    /// older than the recorded one (a metrics value read just before an election) has no
    /// floor of its own: `last_log` is used as it is.
    fn of(&self, term: u64, last_log: u64) -> u64 {
        let mut end = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if term > end.term {
            *end = TermEnd { term, last_log };
        }
        if term == end.term {
            end.last_log
        } else {
            last_log
        }
    }
}

impl std::fmt::Debug for MetaNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaNode")
            .field("id", &self.id)
            .field("addr", &self.advertise_addr)
            .finish_non_exhaustive()
    }
}

impl MetaNode {
    /// This member's id.
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// This member's Raft (its metrics: role, term, indexes).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// This member's state machine (what it applied, its database, snapshots installed).
    pub fn state_machine(&self) -> &Arc<SmShared> {
        &self.sm
    }

    /// The pool this member's tokens name (DESIGN §10).
    pub(crate) fn pool(&self) -> u64 {
        raftfs_core::federation::pool_of(self.nameservice.as_ref())
    }

    /// This member's nameservice as the wire names it ("" for the unnamed one).
    pub(crate) fn nameservice_name(&self) -> &str {
        self.nameservice
            .as_ref()
            .map_or("", raftfs_core::federation::NameserviceId::as_str)
    }

    /// The caller of `req`, if it may make a call of class `need`; a refusal is
    /// `PermissionDenied` before anything is done (DESIGN §9).
    pub(crate) fn authorize<T>(
        &self,
        req: &tonic::Request<T>,
        need: raftfs_core::identity::Need,
    ) -> Result<Arc<raftfs_core::identity::Caller>, MetaError> {
        let caller =
            raftfs_runtime::caller_of(req).map_err(|s| MetaError::Internal(s.message().into()))?;
        if let Err(denied) = self.authorizer.check(&caller, need) {
            tracing::warn!(%denied, "refused");
            return Err(denied.into());
        }
        Ok(caller)
    }

    /// Runs `f` on a consistent view of this member's own state, on a blocking thread,
    /// without a client's consistency checks (the active preparing an entry, its monitors).
    pub async fn read_local<T, E>(
        &self,
        f: impl FnOnce(&crate::journal::rocks::SnapshotKv<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, MetaError>
    where
        T: Send + 'static,
        E: Into<MetaError> + Send + 'static,
    {
        let sm = self.sm.clone();
        raftfs_runtime::simulation::blocking(move || {
            let db = sm.db();
            f(&crate::journal::rocks::SnapshotKv::new(&db)).map_err(Into::into)
        })
        .await
        .map_err(|e| MetaError::Internal(format!("read task: {e}")))?
    }

    /// Counts an RPC in the metrics and turns its result into the gRPC reply (every error
    /// through [`status`]).
    pub fn finish_rpc<T>(
        &self,
        method: &'static str,
        start: std::time::Instant,
        r: Result<T, MetaError>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        self.metrics.observe_rpc(method, start.elapsed(), r.is_ok());
        r.map(tonic::Response::new).map_err(tonic::Status::from)
    }

    /// The active's id and address as this node knows them.
    pub fn leader_hint(&self) -> Option<(MemberId, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())?;
        Some((leader, addr))
    }

    /// Succeeds only on the active; otherwise `NotActive` with the active's address.
    pub fn ensure_active(&self) -> Result<(), MetaError> {
        let is_leader = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.state == ServerState::Leader && m.current_leader == Some(self.id)
        };
        if is_leader {
            Ok(())
        } else {
            Err(MetaError::NotActive {
                leader: self.leader_hint(),
            })
        }
    }

    /// Like [`MetaNode::ensure_active`], and also refuses (`Unavailable`, so the client tries
    /// the other members) when this leader has been cut off from its quorum for an election
    /// timeout. A leader that was never acknowledged yet (just elected) is given its chance.
    pub fn ensure_active_for_write(&self) -> Result<(), MetaError> {
        self.ensure_active()?;
        let ack = self.raft.metrics().borrow().millis_since_quorum_ack;
        match ack {
            Some(ms) if u128::from(ms) > self.rules.write_quorum_timeout.as_millis() => {
                Err(MetaError::Unavailable(format!(
                    "the active has not heard from a quorum for {ms} ms"
                )))
            }
            _ => Ok(()),
        }
    }

    /// This member's role now.
    pub fn role(&self) -> Role {
        Role::of(self.id, &self.raft.metrics().borrow())
    }

    /// This member's role and its current Raft term, read together: what a heartbeat reply
    /// tells a blockserver, so that it can ignore a deposed active (DESIGN §9, fences).
    pub fn role_in_term(&self) -> (Role, u64) {
        let m = self.raft.metrics();
        let m = m.borrow();
        (Role::of(self.id, &m), m.current_term)
    }

    /// Gate of every client read: the active (with a recent quorum) serves every read, an
    /// observer only the reads of clients in observer mode (`observer_read`); both once they
    /// have applied at least `last_seen`, the client's state ID. Standbys, and observers asked
    /// for a linearizable read, redirect to the active.
    pub async fn ready_for_read(
        &self,
        last_seen: u64,
        observer_read: bool,
    ) -> Result<(), MetaError> {
        match self.role() {
            Role::Active => {
                self.ensure_active_for_read()?;
                let read_index = self.read_index();
                observer::wait_applied(
                    self.sm.applied_watch(),
                    last_seen.max(read_index),
                    self.rules.read_wait,
                )
                .await?;
                Ok(())
            }
            Role::Observer if !observer_read => Err(MetaError::NotActive {
                leader: self.leader_hint(),
            }),
            Role::Observer if self.rules.skip_state_id_wait => Ok(()),
            Role::Observer => {
                observer::wait_applied(self.sm.applied_watch(), last_seen, self.rules.read_wait)
                    .await?;
                Ok(())
            }
            Role::Standby | Role::Outside => Err(MetaError::NotActive {
                leader: self.leader_hint(),
            }),
        }
    }

    /// The index the active's state must have applied before it answers a read: everything
    /// committed when the read arrived. Within its lease no other member can have committed
    /// more, so an answer from that state sees every write acknowledged before the read.
    ///
    /// What is committed is known here only from the commits this process saw, and those of
    /// a new term may trail what earlier terms acknowledged: a new active's first commit, or
    /// a restarted one's (openraft 0.9 restores a leader in its own term, with no entry to
    /// commit, and re-learns from its followers one reply at a time). Every acknowledged
    /// write is in the active's log, though, so the read index is never below the end of its
    /// log when it first served a read in this term ([`TermFloor`]).
    ///
    /// Without this an active answered from whatever it had applied: right after an election,
    /// behind writes its predecessor had acknowledged (found by the simulation, seed 1006652).
    fn read_index(&self) -> u64 {
        let (term, last_log) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_term, m.last_log_index.unwrap_or(0))
        };
        let floor = self.term_floor.of(term, last_log);
        self.committed.get().map_or(0, |c| c.index).max(floor)
    }
    /// Whether an answer whose state is `state_id` may go to a client that has seen
    /// `last_seen`: checked on the very snapshot the answer was read from.
    pub fn check_state_id(&self, state_id: u64, last_seen: u64) -> Result<(), MetaError> {
        if state_id >= last_seen || self.rules.skip_state_id_wait {
            Ok(())
        } else {
            Err(MetaError::ObserverBehind {
                applied: state_id,
                wanted: last_seen,
            })
        }
    }

    /// Like [`MetaNode::ensure_active`], and also refuses when the leader has not heard from
    /// a quorum within the lease: a deposed leader does not keep answering reads.
    pub fn ensure_active_for_read(&self) -> Result<(), MetaError> {
        self.ensure_active()?;
        if self.rules.skip_read_lease {
            return Ok(());
        }
        let m = self.raft.metrics();
        let ack = m.borrow().millis_since_quorum_ack;
        match ack {
            Some(ms) if u128::from(ms) <= self.rules.quorum_lease.as_millis() => Ok(()),
            _ => Err(MetaError::Unavailable(
                "the active has not heard from a quorum recently".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TermFloor;

    #[test]
    fn a_terms_floor_is_its_log_end_at_its_first_read() {
        let floor = TermFloor::default();
        assert_eq!(floor.of(2, 10), 10);
        assert_eq!(floor.of(2, 15), 10, "kept for the term");
        assert_eq!(floor.of(1, 7), 7, "an older term's view has no floor");
        assert_eq!(floor.of(2, 16), 10);
        assert_eq!(floor.of(3, 20), 20, "a new term, a new floor");
    }
}
