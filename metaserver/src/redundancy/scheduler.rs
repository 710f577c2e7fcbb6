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
//! Budgets: each blockserver gets its share of every rack-pair and datacenter-pair budget
//! whose destination it is in (the budget divided by the live servers there with work), so
//! that the sum over the servers never exceeds the budget. Shares are sent one heartbeat
//! at a time, so a server's new share only takes what the other busy servers' last shares
//! leave: dividing afresh at each heartbeat let the shares of a starting rebuild add up to
//! the budget times the harmonic number of its servers (1.4 times the budget in the
//! busiest second of the rebuild benchmark, measured by the fleet simulator).
//!
//! Everything here is planned in `raftfs_core::reconstruction`'s types (tasks, sources,
//! outcomes, a node's throttle); the heartbeat handler converts them to and from the wire
//! (`service::convert`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raftfs_core::id::{BlockServerId, TaskId};
use raftfs_core::reconstruction::{
    BlockSource, ByteBudget, ReconstructionTask, TaskOutcome, Throttle,
};

use raftfs_runtime::Clock;

use crate::namespace::StoragePolicy;
use crate::namespace::blocks::GroupId;
use crate::namespace::throttle::ThrottleSettings;
use crate::registry::{NodeView, Replica};

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

#[derive(Debug)]
struct InFlight {
    task_id: TaskId,
    target: BlockServerId,
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
    /// The share of each budget (by name) last sent to each server.
    shares: BTreeMap<String, BTreeMap<BlockServerId, u64>>,
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
        s.in_flight.retain(|key, f| {
            if f.done_at.is_some_and(|t| t > pass_started) {
                return true;
            }
            let missing = still_missing.contains(key);
            if missing && (f.done || f.deadline > now) {
                return !f.done || f.deadline > now;
            }
            if f.done {
                return false;
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
        });
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
        s.unrecoverable = unrecoverable;
        s.throttle = throttle;
    }

    /// Installs the budgets in force (each scan round reads them): a change reaches the
    /// servers' shares at their next heartbeats, not when a whole pass ends (33 minutes at
    /// 100 million groups), and a new active hands out work under the budgets at once.
    pub fn set_throttle(&self, throttle: ThrottleSettings) {
        self.lock().throttle = throttle;
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
                        if let Some(f) = s.in_flight.get_mut(&key) {
                            f.done = true;
                            f.done_at = Some(self.clock.now());
                        }
                        s.finished = s.finished.saturating_add(1);
                    }
                    Some(error) => {
                        s.in_flight.remove(&key);
                        s.fronts = [0; 3];
                        s.failed = s.failed.saturating_add(1);
                        tracing::warn!(group = %o.group, index = o.index, %error, "reconstruction task failed");
                    }
                }
            }
        }
    }

    /// The tasks for blockserver `node` (which carries `xmits` now), given every node.
    pub fn assign(
        &self,
        node: BlockServerId,
        xmits: u32,
        nodes: &[NodeView],
    ) -> Vec<ReconstructionTask> {
        let Some(me) = nodes.iter().find(|n| n.id == node && n.live) else {
            return Vec::new();
        };
        let mut room = self.config.max_streams.saturating_sub(xmits);
        if room == 0 {
            return Vec::new();
        }
        let mut s = self.lock();
        let racks = RackMap::new(nodes, &s.throttle);
        let mut out = Vec::new();
        let deadline = self.clock.now() + self.config.task_timeout;
        let mut picked: Vec<(GroupId, u32, BlockServerId, TaskId)> = Vec::new();
        let mut fronts = s.fronts;
        'all: for (q, queue) in s.queues.iter().enumerate() {
            let start = fronts[q];
            let mut leading = true;
            for (position, w) in queue.iter().enumerate().skip(start) {
                let flying = |s: &State, i: &u32| s.in_flight.contains_key(&(w.group, *i));
                if leading && w.missing.iter().all(|i| flying(&s, i)) {
                    fronts[q] = position + 1;
                    continue;
                }
                leading = false;
                for index in &w.missing {
                    if room == 0 {
                        break 'all;
                    }
                    if s.in_flight.contains_key(&(w.group, *index))
                        || picked
                            .iter()
                            .any(|(g, i, _, _)| *g == w.group && i == index)
                    {
                        continue;
                    }
                    // The group's blocks in flight, by position (a scan of every task in
                    // flight per candidate was O(tasks) each).
                    let busy: Vec<BlockServerId> = (0..w.policy.width() as u32)
                        .filter_map(|i| s.in_flight.get(&(w.group, i)).map(|f| f.target))
                        .chain(picked.iter().filter(|p| p.0 == w.group).map(|p| p.2))
                        .collect();
                    let Some(sources) = self.plan(w, *index, me, nodes, &busy, &racks) else {
                        continue;
                    };
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
                    picked.push((w.group, *index, node, task_id));
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
        s.next_task = TaskId(s.next_task.0.saturating_add(picked.len() as u64));
        for (group, index, target, task_id) in picked {
            s.in_flight.insert(
                (group, index),
                InFlight {
                    task_id,
                    target,
                    deadline,
                    done: false,
                    done_at: None,
                },
            );
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
        nodes: &[NodeView],
        busy: &[BlockServerId],
        racks: &RackMap,
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
        let live_racks = racks.live_racks.len().max(1);
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
        // Every server with where it is (`nodes` is the slice the rack map was made of).
        let placed = || nodes.iter().zip(&racks.places);
        if self.config.rack_aware
            && !mine_within
            && placed().any(|(n, p)| within(p.rack) && eligible(n))
        {
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
        // Only the best targets take the work: the fewest source bytes from other racks. A
        // target's sources and their cost depend on its rack alone, so each rack's is
        // computed once (a heartbeat's planning was O(servers² × copies) per work item).
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
        let mut costs: HashMap<u32, Option<u32>> = HashMap::new();
        if let Some(rack) = racks.rack_of(me.id) {
            costs.insert(rack, Some(my_cost));
        }
        let best = placed()
            .filter(|(n, p)| (!mine_within || within(p.rack)) && eligible(n))
            .filter_map(|(n, p)| {
                *costs
                    .entry(p.rack)
                    .or_insert_with(|| cost_in(n).map(|(c, _)| c))
            })
            .min()
            .unwrap_or(my_cost);
        if my_cost > best {
            return None;
        }
        Some(mine)
    }

    /// The tasks `node` should stop.
    pub fn take_cancellations(&self, node: BlockServerId) -> Vec<TaskId> {
        self.lock().cancel.remove(&node).unwrap_or_default()
    }

    /// This node's share of the budgets: a pair's budget divided among the live servers of
    /// the destination that have work in flight (all of them when none has), so that a
    /// server without work does not hold one back; and never more than the other busy
    /// servers' last shares leave of the budget, so that the shares in force add up to the
    /// budget at most while they change (a server with a smaller share gets it at its next
    /// heartbeat, and the budget it frees goes to the others at theirs).
    pub fn throttle_for(&self, node: BlockServerId, nodes: &[NodeView]) -> Throttle {
        let mut s = self.lock();
        let Some(me) = nodes.iter().find(|n| n.id == node) else {
            return Throttle::default();
        };
        let State {
            in_flight,
            throttle,
            shares,
            ..
        } = &mut *s;
        // Servers rebuilding: this active's tasks, and any server whose heartbeat says it
        // holds xmits, which counts every nameservice's tasks (DESIGN §10). Counting only its
        // own, each active of a federation gave each of its busy servers the whole budget, so
        // two pools rebuilding on different servers crossed at twice the budget.
        let live: HashMap<BlockServerId, &NodeView> =
            nodes.iter().filter(|n| n.live).map(|n| (n.id, n)).collect();
        let busy: BTreeSet<BlockServerId> = in_flight
            .values()
            .filter(|f| !f.done)
            .map(|f| f.target)
            .chain(
                nodes
                    .iter()
                    .filter(|n| n.storage.xmits_in_progress > 0)
                    .map(|n| n.id),
            )
            .filter(|id| live.contains_key(id))
            .collect();
        let working = |member: &dyn Fn(&NodeView) -> bool| {
            let live: Vec<&NodeView> = nodes.iter().filter(|n| n.live && member(n)).collect();
            let with_work = live.iter().filter(|n| busy.contains(&n.id)).count() as u64;
            if with_work > 0 {
                with_work
            } else {
                live.len() as u64
            }
        };
        // What the other busy servers hold of `name`, and this server's share recorded.
        // What the other busy servers of the budget's destination hold of `name`; servers
        // gone from it (dead, or moved to another rack or datacenter) are forgotten.
        let mut share_of =
            |name: &str, budget: u64, fair: u64, member: &dyn Fn(&NodeView) -> bool| {
                let sent = shares.entry(name.to_owned()).or_default();
                sent.retain(|id, _| live.get(id).is_some_and(|n| member(n)));
                let held: u64 = sent
                    .iter()
                    .filter(|(id, _)| **id != node && busy.contains(id))
                    .map(|(_, b)| *b)
                    .sum();
                // 0 would mean unlimited: a server left nothing waits at 1 byte a second for
                // its next heartbeat.
                let share = fair.min(budget.saturating_sub(held)).max(1);
                sent.insert(node, share);
                share
            };
        let mut budgets = Vec::new();
        for ((from, to), bps) in &throttle.rack_pairs {
            if *to != me.rack {
                continue;
            }
            let in_rack = |n: &NodeView| n.rack == *to;
            let here = working(&in_rack).max(1);
            let name = format!("rack {from}>{to}");
            budgets.push(ByteBudget {
                bytes_per_sec: share_of(&name, *bps, (bps / here).max(1), &in_rack),
                name,
                from_racks: vec![from.clone()],
            });
        }
        let my_dc = throttle.racks.get(&me.rack);
        for ((from, to), bps) in &throttle.datacenter_pairs {
            if my_dc != Some(to) {
                continue;
            }
            let in_datacenter = |n: &NodeView| throttle.racks.get(&n.rack).is_some_and(|d| d == to);
            let here = working(&in_datacenter).max(1);
            let name = format!("datacenter {from}>{to}");
            budgets.push(ByteBudget {
                bytes_per_sec: share_of(&name, *bps, (bps / here).max(1), &in_datacenter),
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

/// Racks and datacenters of the live servers.
struct RackMap<'a> {
    nodes: &'a [NodeView],
    /// Whether `nodes` is in id order (the registry's is): lookups by id are then a binary
    /// search; lookups per copy and candidate were linear.
    sorted: bool,
    /// The rack and datacenter of each of `nodes` (same positions), as numbers: distances
    /// were string compares and map lookups, most of a heartbeat's planning.
    places: Vec<Place>,
    live_racks: BTreeSet<&'a str>,
    /// Servers being decommissioned (their copies are leaving), found once per heartbeat's
    /// planning rather than once per copy and candidate.
    draining: BTreeSet<BlockServerId>,
}

/// A server's rack and datacenter, numbered within one [`RackMap`] (no datacenter: none
/// mapped for its rack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    rack: u32,
    datacenter: Option<u32>,
}

impl<'a> RackMap<'a> {
    fn new(nodes: &'a [NodeView], throttle: &'a ThrottleSettings) -> Self {
        let mut racks: HashMap<&str, u32> = HashMap::new();
        let mut datacenters: HashMap<&str, u32> = HashMap::new();
        let places = nodes
            .iter()
            .map(|n| {
                let next = racks.len() as u32;
                let rack = *racks.entry(n.rack.as_str()).or_insert(next);
                let datacenter = throttle.racks.get(&n.rack).map(|dc| {
                    let next = datacenters.len() as u32;
                    *datacenters.entry(dc.as_str()).or_insert(next)
                });
                Place { rack, datacenter }
            })
            .collect();
        Self {
            nodes,
            sorted: nodes.is_sorted_by_key(|n| n.id),
            places,
            // The racks a group can spread over: those with a server that takes new blocks.
            live_racks: nodes
                .iter()
                .filter(|n| n.takes_new_blocks())
                .map(|n| n.rack.as_str())
                .collect(),
            draining: nodes
                .iter()
                .filter(|n| n.admin == raftfs_core::namespace::admin_state::Admin::Decommissioning)
                .map(|n| n.id)
                .collect(),
        }
    }

    /// The position of server `id` in `nodes`.
    fn position(&self, id: BlockServerId) -> Option<usize> {
        if self.sorted {
            self.nodes.binary_search_by_key(&id, |n| n.id).ok()
        } else {
            self.nodes.iter().position(|n| n.id == id)
        }
    }

    /// Where server `id` is.
    fn place(&self, id: BlockServerId) -> Option<Place> {
        self.position(id).and_then(|i| self.places.get(i).copied())
    }

    /// Whether `node` is being decommissioned (its copies are leaving).
    fn draining(&self, node: BlockServerId) -> bool {
        self.draining.contains(&node)
    }

    fn node(&self, id: BlockServerId) -> Option<&'a NodeView> {
        self.position(id).and_then(|i| self.nodes.get(i))
    }

    fn rack_of(&self, node: BlockServerId) -> Option<u32> {
        self.place(node).map(|p| p.rack)
    }

    /// 0 within a rack, 1 across racks of a datacenter (or of racks mapped to none), 2
    /// across datacenters.
    fn distance(a: Place, b: Place) -> u32 {
        if a.rack == b.rack {
            return 0;
        }
        match (a.datacenter, b.datacenter) {
            (Some(x), Some(y)) if x != y => 2,
            _ => 1,
        }
    }

    /// [`Self::distance`] between two registered servers (1 when either is unknown).
    fn distance_between(&self, a: BlockServerId, b: BlockServerId) -> u32 {
        match (self.place(a), self.place(b)) {
            (Some(a), Some(b)) => Self::distance(a, b),
            _ => 1,
        }
    }

    /// Of an erasure-coded group (`needed` > 1), a readable copy of the lost block itself: on a
    /// server being decommissioned or in maintenance, whose copy no longer counts. It is
    /// copied rather than decoded, one block read instead of k (HDFS likewise copies a
    /// draining DataNode's internal blocks); the nearest to `target` first.
    fn copy_of(
        &self,
        replicas: &[Replica],
        lost: u32,
        needed: usize,
        target: Option<&NodeView>,
    ) -> Option<BlockSource> {
        if needed <= 1 {
            return None;
        }
        replicas
            .iter()
            .filter(|r| r.index == lost)
            .filter_map(|r| self.node(r.node).filter(|n| n.live))
            .min_by_key(|n| {
                (
                    target.map_or(0, |t| self.distance_between(n.id, t.id)),
                    n.storage.xmits_in_progress,
                    n.id,
                )
            })
            .map(|n| BlockSource {
                index: lost,
                node: n.id,
                addr: n.addr.clone(),
                rack: n.rack.clone(),
            })
    }

    /// `needed` good copies of distinct other internal blocks, chosen at random (the
    /// rack-blind baseline).
    fn pick_random_sources(
        &self,
        replicas: &[Replica],
        empty: &[u32],
        lost: u32,
        needed: usize,
        rng: &mut impl rand::Rng,
    ) -> Option<Vec<BlockSource>> {
        use rand::seq::SliceRandom;
        if let Some(copy) = self.copy_of(replicas, lost, needed, None) {
            return Some(vec![copy]);
        }
        let mut shuffled: Vec<&Replica> = replicas
            .iter()
            .filter(|r| r.index != lost || needed == 1)
            .collect();
        shuffled.shuffle(rng);
        let mut seen = BTreeSet::new();
        let mut out: Vec<BlockSource> = Vec::new();
        for index in empty {
            if out.len() < needed && seen.insert(*index) {
                out.push(BlockSource::zeros(*index, String::new()));
            }
        }
        for r in shuffled {
            if out.len() == needed {
                break;
            }
            let Some(n) = self.node(r.node).filter(|n| n.live) else {
                continue;
            };
            if needed > 1 && !seen.insert(r.index) {
                continue;
            }
            out.push(BlockSource {
                index: r.index,
                node: n.id,
                addr: n.addr.clone(),
                rack: n.rack.clone(),
            });
        }
        (out.len() == needed).then_some(out)
    }

    /// `needed` good copies of distinct other internal blocks, nearest to `target` first.
    fn pick_sources(
        &self,
        replicas: &[Replica],
        empty: &[u32],
        lost: u32,
        needed: usize,
        target: &NodeView,
    ) -> Option<Vec<BlockSource>> {
        if let Some(copy) = self.copy_of(replicas, lost, needed, Some(target)) {
            return Some(vec![copy]);
        }
        let here = self.place(target.id);
        let mut candidates: Vec<(u32, &NodeView, u32)> = replicas
            .iter()
            .filter(|r| r.index != lost || needed == 1)
            .filter_map(|r| {
                let i = self.position(r.node)?;
                let n = self.nodes.get(i).filter(|n| n.live)?;
                let distance = match (self.places.get(i), here) {
                    (Some(a), Some(b)) => Self::distance(*a, b),
                    _ => 1,
                };
                Some((distance, n, r.index))
            })
            .collect();
        // Nearest first; among equals, the least busy server, then the lowest index (data
        // blocks before parity: no decoding work wasted on parity when data is there).
        candidates.sort_by_key(|(d, n, i)| (*d, n.storage.xmits_in_progress, *i, n.id));
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for index in empty {
            if out.len() < needed && seen.insert(*index) {
                out.push(BlockSource::zeros(*index, target.rack.clone()));
            }
        }
        for (_, n, index) in candidates {
            if out.len() == needed {
                break;
            }
            if needed > 1 && !seen.insert(index) {
                continue;
            }
            out.push(BlockSource {
                index,
                node: n.id,
                addr: n.addr.clone(),
                rack: n.rack.clone(),
            });
        }
        (out.len() == needed).then_some(out)
    }
}

#[cfg(test)]
mod tests;
