//! The active's reconstruction work (DESIGN §7): which groups lack internal blocks, in what
//! order they are rebuilt, and which blockserver rebuilds what, from which sources, handed out
//! in heartbeat replies.
//!
//! - Every scan (on the active) rebuilds the queues from the block groups and the registry:
//!   priority 0 for a group one loss from data loss (k live internal blocks, or one replica),
//!   1 for one more, 2 for the rest; groups below k are unrecoverable (counted, reported by
//!   fsck, not scheduled). Groups whose rebuild is in flight are skipped until the rebuilt
//!   block is reported, the task fails, or it times out.
//! - A heartbeat from blockserver X gets tasks whose weights add up to at most
//!   `max_streams - xmits` (X's own report of the weight it is carrying; saturating, so a
//!   bogus report can only stop work, never multiply it), so that X's xmits never pass
//!   `max_streams`; a server carrying nothing takes one task whatever its weight, so that
//!   no task is too heavy to run anywhere. HDFS counts tasks against `max_transfer` instead,
//!   and a DataNode given 8 RS-6-3 tasks (weight 3 each) carries 24 xmits against a limit of
//!   8 (measured by the fleet simulator). The tasks are the most urgent missing blocks that
//!   X may hold (no block
//!   of that group on X yet; room for it; its rack not over its share of the group's blocks
//!   unless no live server elsewhere qualifies) and for which X is among the best targets
//!   (fewest sources outside its rack and datacenter).
//! - Sources: k surviving internal blocks (one replica), from X's rack first, then X's
//!   datacenter, then anywhere, so that the fewest bytes cross racks. A block whose only
//!   copy is on a server out of service (decommissioning, in maintenance) is copied from
//!   there instead of decoded.
//! - Each task carries its xmits weight, `max(max(sources, targets) × weight, 1)` for EC and
//!   1 for a replica, computed here with saturating arithmetic.
//!
//! Budgets: a rack-pair or datacenter-pair budget is divided among the servers of its
//! destination that read across it (this active's tasks whose sources are on the budget's
//! side; and, as this active cannot see their reads, servers carrying another active's
//! work), so that a server rebuilding from its own rack holds none of it back. A share only
//! takes what the other readers' last shares leave: dividing afresh at each heartbeat let the
//! shares of a starting rebuild add up to the budget times the harmonic number of its
//! servers (1.4 times the budget in the busiest second of the rebuild benchmark, measured by
//! the fleet simulator). And no budget is split into shares smaller than [`MIN_SHARE`]: past
//! `budget / MIN_SHARE` readers, work that would cross it waits for one of them.
//!
//! Everything here is planned in `raftfs_core::reconstruction`'s types (tasks, sources,
//! outcomes, a node's throttle); the heartbeat handler converts them to and from the wire
//! (`service::convert`).

mod racks;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftfs_core::id::{BlockServerId, TaskId};
use raftfs_core::reconstruction::{
    BlockSource, ByteBudget, ReconstructionTask, TaskOutcome, Throttle,
};

use raftfs_runtime::Clock;

use crate::namespace::StoragePolicy;
use crate::namespace::blocks::GroupId;
use crate::namespace::throttle::ThrottleSettings;
use crate::registry::{NodeView, Replica, Snapshot};

use racks::{RackMap, Working};

use super::expected_len;

/// Tuning of the scheduler.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// HDFS's `maxReplicationStreams`: the xmits a blockserver may carry.
    pub max_streams: u32,
    /// HDFS's `ec.reconstruction.xmits.weight`.
    pub xmits_weight: f64,
    /// A task not heard of for this long is given up and the block rescheduled.
    pub task_timeout: Duration,
    /// Rack-aware targets and sources, and per-rack aggregation of cells; when false, any
    /// eligible server takes the work from random sources, each cell read on its own (the
    /// baseline the benchmark compares against).
    pub rack_aware: bool,
}

/// A task's xmits weight: 1 for a replica; for EC `max(max(sources, targets) × weight, 1)`
/// with the product truncated (as HDFS's `(int)` cast) and saturating (HDFS-17284).
pub fn task_weight(sources: usize, targets: usize, weight: f64, erasure_coded: bool) -> u32 {
    if !erasure_coded {
        return 1;
    }
    let w = (sources.max(targets) as f64 * weight).floor();
    if w.is_nan() {
        return 1;
    }
    if w >= f64::from(u32::MAX) {
        return u32::MAX;
    }
    (w as u32).max(1)
}

/// One group that lacks internal blocks.
#[derive(Debug, Clone)]
pub struct Work {
    pub group: GroupId,
    pub policy: StoragePolicy,
    pub length: u64,
    /// Internal blocks (indices) with bytes and no good copy.
    pub missing: Vec<u32>,
    /// Good copies of the others.
    pub replicas: Vec<Replica>,
    /// Every server that reported any copy of the group (also short or corrupt ones): none
    /// of them may receive another internal block of it.
    pub holders: Vec<BlockServerId>,
}

/// No budget is split into shares smaller than this (bytes a second): at most
/// `budget / MIN_SHARE` servers (at least one) rebuild across a budgeted pair at once. A
/// worker reads whole cells (1 MiB), so in any second a server moves its share plus up to a
/// cell; at 20 cells a second that is 5% over. Split among every busy server of the
/// destination, a 100 MB/s datacenter budget gave hundreds of servers about 1 MB/s each,
/// and their cells, started together, crossed in waves up to 4.6 times the budget in a
/// second (measured by the fleet simulator).
pub const MIN_SHARE: u64 = 20 << 20;

/// Most blocks one heartbeat's hand-out plans (chooses sources and judges whether its server
/// is among the best targets); the next heartbeat goes on from there (`State::resume`).
/// Work held up behind a budget split among as many servers as it may be stays at the head
/// of the queue, and every heartbeat walked and planned the whole queue behind it (1.3 ms a
/// heartbeat at 200 servers, measured by the fleet simulator).
const MAX_PLANS: usize = 64;

/// Most queued entries one heartbeat's hand-out walks, planned or not (entries whose blocks
/// are all in flight are passed over, but each is a lookup: past a resumed position, a
/// rebuild's whole queue was walked at every heartbeat).
const MAX_VISITS: usize = 512;

/// How long a block's best target cost is reused: a server that left or filled up since
/// may leave the block unhanded for that long.
const BEST_COST_AGE: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct InFlight {
    task_id: TaskId,
    target: BlockServerId,
    /// The task's xmits weight, the target's rack, and the racks it reads from: which
    /// budgets it crosses is judged from these by the budgets in force.
    weight: u32,
    rack: String,
    reads: Vec<String>,
    deadline: Instant,
    /// Reported done; kept until a scan no longer lists the block missing, so that the
    /// queues of the last scan do not hand it out again (or put another block of the group
    /// on the same server) before the new copy is in the registry.
    done: bool,
    /// When it was reported done: a pass that began before may have read the group before
    /// the new copy, so the record outlives that pass.
    done_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    queues: [Vec<Work>; 3],
    /// Work added between passes since the last `update`, and when (see [`Scheduler::add`]).
    recent: Vec<(Instant, usize, Work)>,
    /// Tasks to cancel, by the node running them (sent with its next heartbeat reply).
    cancel: HashMap<BlockServerId, Vec<TaskId>>,
    unrecoverable: u64,
    in_flight: HashMap<(GroupId, u32), InFlight>,
    next_task: TaskId,
    /// The term `next_task` counts in ([`Scheduler::enter_term`]).
    term: u64,
    started: u64,
    finished: u64,
    failed: u64,
    throttle: ThrottleSettings,
    /// Of each queue, how many leading entries have every missing block in flight: a
    /// heartbeat starts past them (it walked them all, each a lookup, and a rebuild of a
    /// rack queues hundreds of thousands). Back to 0 whenever a task leaves the flight
    /// without its block (it failed or timed out) or the queues change.
    fronts: [usize; 3],
    /// Of each queue, where a heartbeat's hand-out stopped at [`MAX_PLANS`] (0: none): the
    /// next one starts there and comes round to the front, so that work behind blocks no
    /// server can take yet (a budget's readers all busy, no server with room) is reached.
    resume: [usize; 3],
    /// The lowest cost of rebuilding each block (by group, index, and whether only racks
    /// within their share were considered) over every rack: computed by the first heartbeat
    /// that plans the block, read by the next ones until [`BEST_COST_AGE`] has passed since
    /// `best_since` or the queues change (each heartbeat computed it over every rack: 200
    /// racks made a plan 30 µs and a heartbeat 2 ms).
    best: HashMap<(GroupId, u32, bool), u32>,
    best_since: Option<Instant>,
    /// The shares of each budget (by name) last sent to the busy servers.
    shares: BTreeMap<String, Book>,
    /// Bumped whenever `throttle` changes (the rack map depends on it).
    throttle_version: u64,
    /// What the last registry snapshot planned on gave (see [`Planned`]).
    planned: Option<Arc<Planned>>,
    /// The weight of the tasks in flight and not yet reported done, by the server running
    /// them.
    flying: HashMap<BlockServerId, u32>,
    /// Of each budget (by name), the servers running tasks that read across it: rebuilt
    /// from the tasks in flight with every rack map, added to as tasks are handed out.
    crossing: HashMap<String, BTreeSet<BlockServerId>>,
}

impl State {
    /// The weight of this scheduler's tasks running on `node`.
    fn own_weight(&self, node: BlockServerId) -> u32 {
        self.flying.get(&node).copied().unwrap_or(0)
    }

    /// Counts a task of `weight` starting (`up`) or ending on `node`.
    fn count_flying(&mut self, node: BlockServerId, weight: u32, up: bool) {
        let n = self.flying.entry(node).or_default();
        *n = if up {
            n.saturating_add(weight)
        } else {
            n.saturating_sub(weight)
        };
        if *n == 0 {
            self.flying.remove(&node);
        }
    }

    /// Which servers read across which budget, from the tasks in flight.
    /// Tasks on servers that are dead take no reader's place (they would until they time
    /// out, 300 s).
    fn recount_crossing(&mut self, map: &RackMap) {
        let mut crossing: HashMap<String, BTreeSet<BlockServerId>> = HashMap::new();
        let live = |id: BlockServerId| map.node(id).is_some_and(|n| n.live);
        for f in self
            .in_flight
            .values()
            .filter(|f| !f.done && live(f.target))
        {
            for (name, _) in crossed(&self.throttle, &f.reads, &f.rack) {
                crossing.entry(name).or_default().insert(f.target);
            }
        }
        self.crossing = crossing;
    }

    /// Whether budget `name` (of `bytes_per_sec`) has as many servers reading across it as
    /// [`MIN_SHARE`] allows, `node` not among them.
    fn budget_full(&self, name: &str, bytes_per_sec: u64, node: BlockServerId) -> bool {
        let Some(servers) = self.crossing.get(name) else {
            return false;
        };
        let most = (bytes_per_sec / MIN_SHARE).max(1);
        !servers.contains(&node) && servers.len() as u64 >= most
    }

    /// Installs budgets; a change makes the next heartbeat plan on a new rack map.
    fn install(&mut self, throttle: ThrottleSettings) {
        if self.throttle != throttle {
            self.throttle = throttle;
            self.throttle_version = self.throttle_version.wrapping_add(1);
        }
    }

    /// Forgets the shares of servers that no longer read across their budget (nor carry
    /// another active's work), are dead or left its destination: their shares no longer
    /// hold back the others'.
    fn prune_shares(&mut self, map: &RackMap, working: &Working) {
        for (name, book) in self.shares.iter_mut() {
            let crossing = self.crossing.get(name);
            book.sent.retain(|id, _| {
                let live = map.node(*id).filter(|n| n.live);
                let member = live.is_some_and(|n| match &book.to {
                    Destination::Rack(r) => n.rack == *r,
                    Destination::Datacenter(d) => self.throttle.racks.get(&n.rack) == Some(d),
                });
                member && (crossing.is_some_and(|c| c.contains(id)) || working.foreign.contains(id))
            });
            book.total = book.sent.values().fold(0, |a, b| a.saturating_add(*b));
        }
    }
}

/// The budgets (name, bytes a second) a task on a server of rack `to` crosses by reading
/// from `reads` (racks), under `throttle`.
fn crossed(throttle: &ThrottleSettings, reads: &[String], to: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut add = |name: String, bps: u64| {
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, bps));
        }
    };
    for from in reads.iter().filter(|r| *r != to) {
        if let Some(bps) = throttle.rack_pairs.get(&(from.clone(), to.to_owned())) {
            add(format!("rack {from}>{to}"), *bps);
        }
        if let (Some(a), Some(b)) = (throttle.racks.get(from), throttle.racks.get(to))
            && a != b
            && let Some(bps) = throttle.datacenter_pairs.get(&(a.clone(), b.clone()))
        {
            add(format!("datacenter {a}>{b}"), *bps);
        }
    }
    out
}

/// Where a budget's bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    Rack(String),
    Datacenter(String),
}

/// The shares of one budget last sent to the busy servers of its destination, and their sum.
#[derive(Debug)]
struct Book {
    to: Destination,
    sent: BTreeMap<BlockServerId, u64>,
    total: u64,
}

impl Book {
    fn new(to: Destination) -> Self {
        Self {
            to,
            sent: BTreeMap::new(),
            total: 0,
        }
    }

    /// What the other servers hold of the budget.
    fn held_by_others(&self, node: BlockServerId) -> u64 {
        self.total
            .saturating_sub(self.sent.get(&node).copied().unwrap_or(0))
    }

    /// Records `node`'s share (none: it is not busy, and holds nothing back).
    fn set(&mut self, node: BlockServerId, share: Option<u64>) {
        if let Some(old) = self.sent.remove(&node) {
            self.total = self.total.saturating_sub(old);
        }
        if let Some(share) = share {
            self.sent.insert(node, share);
            self.total = self.total.saturating_add(share);
        }
    }
}

/// A task chosen for the server whose heartbeat is answered.
struct Picked {
    group: GroupId,
    index: u32,
    task_id: TaskId,
    weight: u32,
    reads: Vec<String>,
    /// The budgets it crosses, by name.
    crosses: Vec<String>,
}

/// What the scheduler derives from one set of servers and budgets: the rack map, and who
/// was live and busy where. Kept while the registry's snapshot and the budgets stay the
/// same, so that a heartbeat reads it instead of walking every server (a new snapshot comes
/// at least every [`crate::registry::SNAPSHOT_MAX_AGE`]).
#[derive(Debug)]
struct Planned {
    /// (snapshot number, budgets' version); none for a map of servers given by hand.
    key: Option<(u64, u64)>,
    map: RackMap,
    working: Working,
}

/// What `reconstruction status` shows.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub queued: [u64; 3],
    pub unrecoverable: u64,
    pub in_flight: u64,
    pub in_flight_by_node: BTreeMap<BlockServerId, u64>,
    pub started: u64,
    pub finished: u64,
    pub failed: u64,
}

/// The scheduler of one metaserver (active only acts on it).
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    state: Mutex<State>,
    /// Deadlines and completion times are taken on this clock (the system's, or a
    /// simulator's).
    clock: Clock,
    /// The rack-blind baseline's random sources come from this generator when set (a
    /// simulator's seed), from the process's otherwise.
    rng: Mutex<Option<rand::rngs::StdRng>>,
}

/// Priority of a group with `live` internal blocks (replicas) of which `needed` are needed:
/// `None` when it cannot be rebuilt.
pub fn priority(live: usize, needed: usize) -> Option<usize> {
    match live.checked_sub(needed) {
        None => None,
        Some(0) => Some(0),
        Some(1) => Some(1),
        Some(_) => Some(2),
    }
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                next_task: TaskId(1),
                ..State::default()
            }),
            clock: Clock::System,
            rng: Mutex::new(None),
        }
    }

    /// On `clock` instead of the system's (the fleet simulator's manual clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Random choices (the rack-blind baseline's sources) drawn from `seed`: the same seed,
    /// the same choices.
    pub fn with_seed(self, seed: u64) -> Self {
        use rand::SeedableRng;
        *self.rng.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(rand::rngs::StdRng::seed_from_u64(seed));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by the active before it hands out work in `term`: task ids start over at
    /// [`TaskId::first_of_term`], so that no id of this term is one a previous active handed
    /// out (blockservers key running tasks, and the active their outcomes, by id; an id
    /// reused after a failover let a cancellation abort the wrong task).
    pub fn enter_term(&self, term: u64) {
        let mut s = self.lock();
        if s.term != term {
            s.term = term;
            s.next_task = TaskId::first_of_term(term);
        }
    }

    /// The groups of the tasks in flight (the scan tells which of them still exist).
    pub fn in_flight_groups(&self) -> BTreeSet<GroupId> {
        self.lock().in_flight.keys().map(|(g, _)| *g).collect()
    }

    /// Replaces the queues with a new scan's `work` (and `unrecoverable` count) and the
    /// budgets with `throttle`; forgets in-flight tasks whose block is back or that timed out.
    /// `gone` holds the groups of in-flight tasks that the scan found deleted (their file
    /// was): their tasks are cancelled.
    pub fn update(
        &self,
        work: Vec<(usize, Work)>,
        gone: &BTreeSet<GroupId>,
        unrecoverable: u64,
        throttle: ThrottleSettings,
    ) {
        self.update_pass(work, gone, unrecoverable, throttle, self.clock.now());
    }

    /// [`Self::update`] for a pass that began reading groups at `pass_started`: work added
    /// after that and not found by the pass (it may have read those groups before their
    /// server died) is carried over and counts as missing; a task reported done after that
    /// is kept in flight (the pass may have read its group before the new copy arrived), so
    /// the pass's older view does not hand the block out again.
    pub fn update_pass(
        &self,
        work: Vec<(usize, Work)>,
        gone: &BTreeSet<GroupId>,
        unrecoverable: u64,
        throttle: ThrottleSettings,
        pass_started: Instant,
    ) {
        let mut s = self.lock();
        let now = self.clock.now();
        let found: HashSet<GroupId> = work.iter().map(|(_, w)| w.group).collect();
        let recent = std::mem::take(&mut s.recent);
        let work: Vec<(usize, Work)> = work
            .into_iter()
            .chain(
                recent
                    .into_iter()
                    .filter(|(at, _, w)| *at > pass_started && !found.contains(&w.group))
                    .map(|(_, p, w)| (p, w)),
            )
            .collect();
        let still_missing: BTreeSet<(GroupId, u32)> = work
            .iter()
            .flat_map(|(_, w)| w.missing.iter().map(move |i| (w.group, *i)))
            .collect();
        let mut timed_out = 0;
        let mut rebuilt = 0;
        let mut cancel: Vec<(BlockServerId, TaskId)> = Vec::new();
        let mut landed: Vec<(BlockServerId, u32)> = Vec::new();
        s.in_flight.retain(|key, f| {
            let keep = 'keep: {
                if f.done_at.is_some_and(|t| t > pass_started) {
                    break 'keep true;
                }
                let missing = still_missing.contains(key);
                if missing && (f.done || f.deadline > now) {
                    break 'keep !f.done || f.deadline > now;
                }
                if f.done {
                    break 'keep false;
                }
                if missing {
                    // Timed out: stop it where it runs, and let another server try.
                    timed_out += 1;
                    cancel.push((f.target, f.task_id));
                } else if gone.contains(&key.0) {
                    // The group is gone (its file deleted): the work is pointless.
                    cancel.push((f.target, f.task_id));
                } else {
                    // The rebuilt copy was reported before the task's outcome: it succeeded.
                    rebuilt += 1;
                }
                false
            };
            if !keep && !f.done {
                landed.push((f.target, f.weight));
            }
            keep
        });
        for (target, weight) in landed {
            s.count_flying(target, weight, false);
        }
        s.failed = s.failed.saturating_add(timed_out);
        s.finished = s.finished.saturating_add(rebuilt);
        for (node, task) in cancel {
            s.cancel.entry(node).or_default().push(task);
        }
        let mut queues: [Vec<Work>; 3] = Default::default();
        for (p, w) in work {
            if let Some(q) = queues.get_mut(p) {
                q.push(w);
            }
        }
        s.queues = queues;
        s.fronts = [0; 3];
        s.resume = [0; 3];
        s.best.clear();
        s.unrecoverable = unrecoverable;
        s.install(throttle);
    }

    /// Installs the budgets in force (each scan round reads them): a change reaches the
    /// servers' shares at their next heartbeats, not when a whole pass ends (33 minutes at
    /// 100 million groups), and a new active hands out work under the budgets at once.
    pub fn set_throttle(&self, throttle: ThrottleSettings) {
        self.lock().install(throttle);
    }

    /// Adds work found between passes (the groups of a blockserver that just died), queued at
    /// once. A group already queued is replaced by this newer view of it (all its missing
    /// blocks, at its priority now: a second server's death can make it more urgent). It is
    /// kept when the pass under way ends without it (that pass may have read those groups
    /// before the death).
    pub fn add(&self, work: Vec<(usize, Work)>) {
        let mut s = self.lock();
        let now = self.clock.now();
        let work: Vec<(usize, Work)> = work.into_iter().filter(|(p, _)| *p < 3).collect();
        let newer: HashSet<GroupId> = work.iter().map(|(_, w)| w.group).collect();
        for queue in &mut s.queues {
            queue.retain(|w| !newer.contains(&w.group));
        }
        s.fronts = [0; 3];
        s.resume = [0; 3];
        s.best.clear();
        s.recent.retain(|(_, _, w)| !newer.contains(&w.group));
        for (p, w) in work {
            s.recent.push((now, p, w.clone()));
            s.queues[p].push(w);
        }
    }

    /// Outcomes of tasks that ended, as blockserver `node` reported them; only its own tasks count (a task's id is sequential and
    /// guessable: another server reporting it done would leave the block unbuilt).
    pub fn finished(&self, node: BlockServerId, outcomes: &[TaskOutcome]) {
        let mut s = self.lock();
        for o in outcomes {
            let key = (o.group, o.index);
            if s.in_flight
                .get(&key)
                .is_some_and(|f| f.task_id == o.task_id && f.target == node && !f.done)
            {
                match &o.error {
                    None => {
                        let mut weight = 0;
                        if let Some(f) = s.in_flight.get_mut(&key) {
                            f.done = true;
                            f.done_at = Some(self.clock.now());
                            weight = f.weight;
                        }
                        s.count_flying(node, weight, false);
                        s.finished = s.finished.saturating_add(1);
                    }
                    Some(error) => {
                        let weight = s.in_flight.remove(&key).map_or(0, |f| f.weight);
                        s.count_flying(node, weight, false);
                        s.fronts = [0; 3];
                        s.failed = s.failed.saturating_add(1);
                        tracing::warn!(group = %o.group, index = o.index, %error, "reconstruction task failed");
                    }
                }
            }
        }
    }

    /// The tasks for blockserver `node` (which carries `xmits` now), given every node (a
    /// rack map made for this call; heartbeats use [`Self::assign_on`]).
    pub fn assign(
        &self,
        node: BlockServerId,
        xmits: u32,
        nodes: &[NodeView],
    ) -> Vec<ReconstructionTask> {
        let mut s = self.lock();
        let planned = Self::plan_on(&mut s, Arc::from(nodes), None);
        self.assign_in(&mut s, node, xmits, &planned)
    }

    /// [`Self::assign`] on the registry's `snapshot`, with the rack map kept from the last
    /// call on the same snapshot and budgets.
    pub fn assign_on(
        &self,
        node: BlockServerId,
        xmits: u32,
        snapshot: &Snapshot,
    ) -> Vec<ReconstructionTask> {
        let mut s = self.lock();
        let planned = Self::planned(&mut s, snapshot);
        self.assign_in(&mut s, node, xmits, &planned)
    }

    /// What `snapshot` and the budgets in force give: kept in `s` for the next calls on them.
    fn planned(s: &mut State, snapshot: &Snapshot) -> Arc<Planned> {
        let key = (snapshot.number, s.throttle_version);
        if let Some(p) = &s.planned
            && p.key == Some(key)
        {
            return p.clone();
        }
        let planned = Arc::new(Self::plan_on(s, snapshot.nodes.clone(), Some(key)));
        s.planned = Some(planned.clone());
        planned
    }

    /// The rack map of `nodes` under the budgets in force, who is busy where now; the shares
    /// of servers no longer busy are forgotten.
    fn plan_on(s: &mut State, nodes: Arc<[NodeView]>, key: Option<(u64, u64)>) -> Planned {
        let map = RackMap::new(nodes, &s.throttle);
        let working = map.working(|id| s.own_weight(id));
        s.recount_crossing(&map);
        s.prune_shares(&map, &working);
        Planned { key, map, working }
    }

    fn assign_in(
        &self,
        s: &mut State,
        node: BlockServerId,
        xmits: u32,
        planned: &Planned,
    ) -> Vec<ReconstructionTask> {
        let racks = &planned.map;
        let Some(me) = racks.node(node).filter(|n| n.live) else {
            return Vec::new();
        };
        let mut room = self.config.max_streams.saturating_sub(xmits);
        if room == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        let deadline = self.clock.now() + self.config.task_timeout;
        let mut picked: Vec<Picked> = Vec::new();
        let mut fronts = s.fronts;
        let mut resume = s.resume;
        let now = self.clock.now();
        if planned.key.is_none()
            || s.best_since
                .is_none_or(|t| now.saturating_duration_since(t) >= BEST_COST_AGE)
        {
            s.best.clear();
            s.best_since = Some(now);
        }
        let mut best = std::mem::take(&mut s.best);
        let mut plans = 0usize;
        let mut visits = 0usize;
        'all: for (q, queue) in s.queues.iter().enumerate() {
            let start = fronts[q];
            let from = resume[q].clamp(start, queue.len());
            let mut leading = from == start;
            for position in (from..queue.len()).chain(start..from) {
                let Some(w) = queue.get(position) else {
                    continue;
                };
                let flying = |s: &State, i: &u32| s.in_flight.contains_key(&(w.group, *i));
                if leading && w.missing.iter().all(|i| flying(s, i)) {
                    fronts[q] = position + 1;
                    continue;
                }
                leading = false;
                visits += 1;
                if visits > MAX_VISITS {
                    resume[q] = position;
                    break 'all;
                }
                for index in &w.missing {
                    if room == 0 {
                        break 'all;
                    }
                    if s.in_flight.contains_key(&(w.group, *index))
                        || picked
                            .iter()
                            .any(|p| p.group == w.group && p.index == *index)
                    {
                        continue;
                    }
                    // The group's blocks in flight, by position (a scan of every task in
                    // flight per candidate was O(tasks) each).
                    let busy: Vec<BlockServerId> = (0..w.policy.width() as u32)
                        .filter_map(|i| s.in_flight.get(&(w.group, i)).map(|f| f.target))
                        .chain(picked.iter().filter(|p| p.group == w.group).map(|_| node))
                        .collect();
                    plans += 1;
                    if plans > MAX_PLANS {
                        resume[q] = position;
                        break 'all;
                    }
                    let Some(sources) = self.plan(w, *index, me, &busy, racks, &mut best) else {
                        continue;
                    };
                    let mut reads: Vec<String> = sources
                        .iter()
                        .filter(|src| !src.is_zeros())
                        .map(|src| src.rack.clone())
                        .collect();
                    reads.sort_unstable();
                    reads.dedup();
                    // Past the servers a budget may be split among, the work waits for one
                    // of them (or goes to a server already reading across it).
                    let crosses = crossed(&s.throttle, &reads, &me.rack);
                    let mine =
                        |name: &str| picked.iter().any(|p| p.crosses.iter().any(|c| c == name));
                    if crosses
                        .iter()
                        .any(|(name, bps)| !mine(name) && s.budget_full(name, *bps, node))
                    {
                        continue;
                    }
                    let erasure_coded = matches!(w.policy, StoragePolicy::ErasureCoded { .. });
                    let weight =
                        task_weight(sources.len(), 1, self.config.xmits_weight, erasure_coded);
                    let alone = xmits == 0 && out.is_empty();
                    if weight > room && !alone {
                        // The most urgent work left does not fit: lighter, less urgent tasks
                        // (replicas') would keep this server from ever having room for it.
                        break 'all;
                    }
                    room = room.saturating_sub(weight);
                    let task_id = TaskId(s.next_task.0.saturating_add(picked.len() as u64));
                    picked.push(Picked {
                        group: w.group,
                        index: *index,
                        task_id,
                        weight,
                        reads,
                        crosses: crosses.into_iter().map(|(name, _)| name).collect(),
                    });
                    out.push(ReconstructionTask {
                        id: task_id,
                        group: w.group,
                        policy: w.policy.clone(),
                        group_length: w.length,
                        index: *index,
                        sources,
                        weight,
                        aggregate: self.config.rack_aware,
                    });
                }
            }
        }
        s.fronts = fronts;
        s.resume = resume;
        s.best = best;
        s.next_task = TaskId(s.next_task.0.saturating_add(picked.len() as u64));
        for p in picked {
            for name in p.crosses {
                s.crossing.entry(name).or_default().insert(node);
            }
            s.in_flight.insert(
                (p.group, p.index),
                InFlight {
                    task_id: p.task_id,
                    target: node,
                    weight: p.weight,
                    rack: me.rack.clone(),
                    reads: p.reads,
                    deadline,
                    done: false,
                    done_at: None,
                },
            );
            s.count_flying(node, p.weight, true);
            s.started = s.started.saturating_add(1);
        }
        out
    }

    /// Whether `me` should rebuild internal block `index` of `w`, and from which sources.
    fn plan(
        &self,
        w: &Work,
        index: u32,
        me: &NodeView,
        busy: &[BlockServerId],
        racks: &RackMap,
        best_cost: &mut HashMap<(GroupId, u32, bool), u32>,
    ) -> Option<Vec<BlockSource>> {
        let holders: BTreeSet<BlockServerId> = w
            .replicas
            .iter()
            .map(|r| r.node)
            .chain(w.holders.iter().copied())
            .chain(busy.iter().copied())
            .collect();
        let need = expected_len(&w.policy, w.length, index);
        let eligible = |n: &NodeView| {
            n.takes_new_blocks()
                && !holders.contains(&n.id)
                && n.storage.available >= need
                && n.storage.failed_volumes < n.storage.volumes.max(1)
        };
        if !eligible(me) {
            return None;
        }
        // Rack share: a rack should not hold more of the group than an even spread gives it,
        // unless no live server on another rack can take the block. Copies on servers being
        // drained are leaving and do not count: a drained rack's blocks go back to it only
        // when no other rack has room.
        let width = w.policy.width();
        let live_racks = racks.live_racks.max(1);
        let share = width.div_ceil(live_racks);
        let mut in_rack: HashMap<u32, usize> = HashMap::new();
        for r in &w.replicas {
            if let Some(rack) = racks.rack_of(r.node)
                && !racks.draining(r.node)
            {
                *in_rack.entry(rack).or_default() += 1;
            }
        }
        for b in busy {
            if let Some(rack) = racks.rack_of(*b) {
                *in_rack.entry(rack).or_default() += 1;
            }
        }
        let within = |rack: u32| in_rack.get(&rack).copied().unwrap_or(0) < share;
        let mine_within = racks.rack_of(me.id).is_some_and(within);
        // The first server of each rack that may take the block (racks are walked, not
        // servers: at 10,000 servers a walk of every server per planned block was most of a
        // heartbeat's cost). A target's sources and their cost depend on its rack alone.
        let candidates = || {
            racks
                .by_rack
                .iter()
                .enumerate()
                .filter_map(|(rack, members)| {
                    members
                        .iter()
                        .filter_map(|i| racks.nodes.get(*i))
                        .find(|n| eligible(n))
                        .map(|n| (rack as u32, n))
                })
        };
        if self.config.rack_aware && !mine_within && candidates().any(|(rack, _)| within(rack)) {
            return None;
        }
        let needed = w.policy.data_blocks();
        // Internal blocks the layout leaves empty (past the end of a short group) are known
        // zeros: free sources, read from nowhere.
        let empty: Vec<u32> = (0..width as u32)
            .filter(|i| *i != index && expected_len(&w.policy, w.length, *i) == 0)
            .collect();
        if !self.config.rack_aware {
            let mut seeded = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            return match seeded.as_mut() {
                Some(rng) => racks.pick_random_sources(&w.replicas, &empty, index, needed, rng),
                None => racks.pick_random_sources(
                    &w.replicas,
                    &empty,
                    index,
                    needed,
                    &mut raftfs_runtime::simulation::rng(),
                ),
            };
        }
        // Only the best targets take the work: the fewest source bytes from other racks, each
        // rack's computed once (a heartbeat's planning was O(servers² × copies) per work
        // item).
        let cost_in = |target: &NodeView| {
            racks
                .pick_sources(&w.replicas, &empty, index, needed, target)
                .map(|sources| {
                    let cost = sources
                        .iter()
                        .filter(|s| !s.is_zeros())
                        .map(|s| racks.distance_between(s.node, target.id))
                        .sum::<u32>();
                    (cost, sources)
                })
        };
        let (my_cost, mine) = cost_in(me)?;
        let best = *best_cost
            .entry((w.group, index, mine_within))
            .or_insert_with(|| {
                // A target's cost depends on where the sources are from it: every rack of a
                // datacenter that holds none costs the same, so only the racks holding one
                // and the first other rack of each datacenter are costed (all 200 racks of
                // a fleet were, for every block).
                let holding: BTreeSet<u32> = w
                    .replicas
                    .iter()
                    .filter_map(|r| racks.rack_of(r.node))
                    .collect();
                let mut datacenters = BTreeSet::new();
                candidates()
                    .filter(|(rack, _)| !mine_within || within(*rack))
                    .filter(|(rack, n)| {
                        holding.contains(rack)
                            || datacenters.insert(racks.place(n.id).and_then(|p| p.datacenter))
                    })
                    .filter_map(|(_, n)| cost_in(n).map(|(c, _)| c))
                    .min()
                    .unwrap_or(my_cost)
            });
        if my_cost > best {
            return None;
        }
        Some(mine)
    }

    /// The tasks `node` should stop.
    pub fn take_cancellations(&self, node: BlockServerId) -> Vec<TaskId> {
        self.lock().cancel.remove(&node).unwrap_or_default()
    }

    /// This node's share of the budgets: a pair's budget divided among the servers of the
    /// destination that read across it (see the module's doc; all its live servers when none
    /// does), so that a server without such work does not hold one back; and never more than
    /// the other readers' last shares leave of the budget, so that the shares in force add
    /// up to the budget at most while they change (a server with a smaller share gets it at
    /// its next heartbeat, and the budget it frees goes to the others at theirs). Servers
    /// whose xmits are more than this active's tasks on them weigh carry another
    /// nameservice's work and count as readers of every budget of their destination (DESIGN
    /// §10): counting only its own, each active of a federation gave each of its busy
    /// servers the whole budget, so two pools rebuilding on different servers crossed at
    /// twice the budget. Here the node's xmits are those of `nodes`.
    pub fn throttle_for(&self, node: BlockServerId, nodes: &[NodeView]) -> Throttle {
        let mut s = self.lock();
        let planned = Self::plan_on(&mut s, Arc::from(nodes), None);
        let foreign = planned
            .map
            .node(node)
            .is_some_and(|n| n.storage.xmits_in_progress > s.own_weight(node));
        self.throttle_in(&mut s, node, &planned, foreign)
    }

    /// [`Self::throttle_for`] on the registry's `snapshot`, for a server that carries
    /// another active's work when `foreign` (its heartbeat's xmits against
    /// [`Self::own_weight`] before this reply's tasks); the others' as the rack map kept for
    /// the snapshot found them (at most [`crate::registry::SNAPSHOT_MAX_AGE`] old).
    pub fn throttle_on(&self, node: BlockServerId, foreign: bool, snapshot: &Snapshot) -> Throttle {
        let mut s = self.lock();
        let planned = Self::planned(&mut s, snapshot);
        self.throttle_in(&mut s, node, &planned, foreign)
    }

    /// The weight of this scheduler's tasks running on `node`, as far as it knows.
    pub fn own_weight(&self, node: BlockServerId) -> u32 {
        self.lock().own_weight(node)
    }

    fn throttle_in(
        &self,
        s: &mut State,
        node: BlockServerId,
        planned: &Planned,
        foreign: bool,
    ) -> Throttle {
        let map = &planned.map;
        let (Some(me), Some(here)) = (map.node(node), map.place(node)) else {
            return Throttle::default();
        };
        // Another active's work on this server may cross any budget of its destination.
        let foreign = me.live && foreign;
        let State {
            throttle,
            shares,
            crossing,
            ..
        } = s;
        // A budget is divided among the servers reading across it (and those carrying
        // another active's work); a server that does neither holds nothing back. Never more
        // than what the others hold leaves; 0 would mean unlimited: a server left nothing
        // waits at 1 byte a second for its next heartbeat.
        let mut share_of =
            |name: &str, to: Destination, budget: u64, (live, foreign_here): (u64, u64)| {
                let readers = crossing.get(name);
                let busy = foreign || readers.is_some_and(|r| r.contains(&node));
                let working = readers.map_or(0, |r| r.len() as u64) + foreign_here;
                let divided_by = if working > 0 { working } else { live.max(1) };
                let book = shares
                    .entry(name.to_owned())
                    .or_insert_with(|| Book::new(to));
                let fair = (budget / divided_by).max(1);
                let share = fair
                    .min(budget.saturating_sub(book.held_by_others(node)))
                    .max(1);
                book.set(node, busy.then_some(share));
                share
            };
        let mut budgets = Vec::new();
        for ((from, to), bps) in &throttle.rack_pairs {
            if *to != me.rack {
                continue;
            }
            let name = format!("rack {from}>{to}");
            let counts = planned.working.in_rack(here.rack);
            budgets.push(ByteBudget {
                bytes_per_sec: share_of(&name, Destination::Rack(to.clone()), *bps, counts),
                name,
                from_racks: vec![from.clone()],
            });
        }
        let my_dc = throttle.racks.get(&me.rack);
        for ((from, to), bps) in &throttle.datacenter_pairs {
            if my_dc != Some(to) {
                continue;
            }
            let name = format!("datacenter {from}>{to}");
            let counts = map
                .datacenter_number(to)
                .map_or((1, 0), |dc| planned.working.in_datacenter(dc));
            budgets.push(ByteBudget {
                bytes_per_sec: share_of(&name, Destination::Datacenter(to.clone()), *bps, counts),
                name,
                from_racks: throttle
                    .racks
                    .iter()
                    .filter(|(_, dc)| *dc == from)
                    .map(|(r, _)| r.clone())
                    .collect(),
            });
        }
        Throttle {
            node_bytes_per_sec: throttle.node_bytes_per_sec,
            budgets,
            max_tasks: self.config.max_streams,
        }
    }

    /// The queues and counters.
    pub fn status(&self) -> (Status, ThrottleSettings) {
        let s = self.lock();
        let mut in_flight_by_node = BTreeMap::new();
        for f in s.in_flight.values().filter(|f| !f.done) {
            *in_flight_by_node.entry(f.target).or_insert(0u64) += 1;
        }
        (
            Status {
                queued: [
                    s.queues[0].len() as u64,
                    s.queues[1].len() as u64,
                    s.queues[2].len() as u64,
                ],
                unrecoverable: s.unrecoverable,
                in_flight: s.in_flight.values().filter(|f| !f.done).count() as u64,
                in_flight_by_node,
                started: s.started,
                finished: s.finished,
                failed: s.failed,
            },
            s.throttle.clone(),
        )
    }
}

#[cfg(test)]
mod tests;
