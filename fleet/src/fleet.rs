//! The simulation: the active's real registry, placement, redundancy scan, scheduler and
//! budgets, and simulated blockservers around them, on simulated time.
//!
//! One thread, one event queue ordered by (time, sequence), one seeded generator: a seed
//! gives the same run every time. The metaserver side is the server's own code, reached
//! through the same functions its workers and RPC handlers call: `placement::choose` for
//! every group, `Registry::register` / `full_report_part` / `incremental`,
//! `redundancy::scan_step` every scan period, `redundancy::heartbeat::{receive, orders}` for
//! every heartbeat, on a manual clock. The blockservers are simulated: they carry xmits as
//! the real ones do (the task's weight, given back when it ends), refuse tasks past the
//! limit the active sent, charge every step of a rebuild to the real token buckets
//! (`raftfs_core::reconstruction::budget`) by the real read plan (`cells_by_rack`), and move
//! bytes at the rates of the resources they share ([`crate::load`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use raftfs_core::id::TaskId;
use raftfs_core::namespace::StoragePolicy;
use raftfs_core::namespace::blocks::{Generation, GroupId};
use raftfs_core::namespace::throttle::ThrottleChange;
use raftfs_core::reconstruction::budget::{Budgets, Ticket};
use raftfs_core::reconstruction::{ReconstructionTask, TaskOutcome};
use raftfs_metaserver::placement;
use raftfs_metaserver::redundancy::heartbeat;
use raftfs_metaserver::redundancy::scheduler::{Scheduler, SchedulerConfig};
use raftfs_metaserver::redundancy::{ScanState, scan_step};
use raftfs_metaserver::registry::{Registry, Reported, Storage};
use raftfs_runtime::{Clock, ManualClock};

use crate::load::{Load, Resource};
use crate::namespace::{FleetKv, Groups, NOWHERE};
use crate::record::{Record, thread_cpu};
use crate::topology::{Rates, Topology};

/// The longest a task waits on a debt before it reads the buckets again (the worker's).
const DEBT_SLICE: Duration = Duration::from_millis(100);

/// Blocks per part of a full report (the blockserver's `report-split-blocks`).
const REPORT_PART: usize = 10_000;

/// How long a read from a server it cannot reach takes to fail (the worker's connect
/// timeout): a task whose sources are across a lost link ends with an error after this.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(10);

/// A budget exceeded by more than this share in a simulated second is a violation.
pub const BUDGET_TOLERANCE: f64 = 0.05;

/// Faults planted in the simulated blockservers, to show that the checks can fail. Only the
/// `bug-switches` build of `fleet-sim` offers them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// A task takes 1 xmit instead of its weight, and gives its weight back when it ends
    /// (the accounting bug behind LINE's incident, HDFS-14353): the count goes negative,
    /// the server reports less than it carries and is handed more.
    pub unweighted_xmits: bool,
    /// The server ignores its shares of the budgets (charges nothing to its buckets).
    pub ignore_budgets: bool,
}

/// Groups of one kind the namespace holds.
#[derive(Debug, Clone)]
pub struct GroupKind {
    pub policy: StoragePolicy,
    pub count: u64,
    /// Each group's length is drawn uniformly from this range (bytes).
    pub length: (u64, u64),
}

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub topology: Topology,
    pub rates: Rates,
    pub groups: Vec<GroupKind>,
    pub scheduler: SchedulerConfig,
    /// A server silent this long is dead (the metaserver's `dead-after-secs`).
    pub dead_after: Duration,
    /// Heartbeat period of every server.
    pub heartbeat: Duration,
    /// The scan's period and groups per round (`redundancy-scan-ms`, `-groups`).
    pub scan_every: Duration,
    pub scan_groups: usize,
    /// Bytes of the lost block a task rebuilds per step, its budgets charged per step (the
    /// worker charges each cell it reads: 1 MiB for RS-6-3-1024k).
    pub step_bytes: u64,
    pub bugs: Bugs,
}

impl Config {
    /// The metaserver's defaults, on `topology`, with `groups`.
    pub fn new(seed: u64, topology: Topology, groups: Vec<GroupKind>) -> Self {
        Self {
            seed,
            topology,
            rates: Rates::default(),
            groups,
            scheduler: SchedulerConfig {
                max_streams: 8,
                xmits_weight: 0.5,
                task_timeout: Duration::from_secs(300),
                rack_aware: true,
            },
            dead_after: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            scan_every: Duration::from_secs(1),
            scan_groups: 50_000,
            step_bytes: 1 << 20,
            bugs: Bugs::default(),
        }
    }
}

/// What happens to the fleet at a point of simulated time.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// These servers stop (their disks with them).
    Kill(Vec<u32>),
    /// A budget change, as `metactl reconstruction throttle` makes it.
    Throttle(ThrottleChange),
    /// The link between two datacenters (by number) carries nothing, either way: reads
    /// across it fail. Heartbeats still reach the active (its control path is not this
    /// link; an active cut off from half its servers is the loss of a datacenter).
    LinkDown(usize, usize),
    LinkUp(usize, usize),
    /// These servers are decommissioned, as `metactl blockserver decommission` does it.
    Decommission(Vec<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Heartbeat(u32),
    Scan,
    /// A step of a running task ended (the task's key and its step number).
    Step(u64, u32),
    /// A step's charge may be paid off (its reads when true, else its write).
    Debt(u64, u32, bool),
    Fault(usize),
}

/// A simulated blockserver.
#[derive(Debug, Default)]
struct Server {
    up: bool,
    budgets: Budgets,
    /// Its xmits count: the weight of the tasks it runs, as the real `Xmits` counts it
    /// (less, even negative, with [`Bugs::unweighted_xmits`]); it reports it clamped at 0.
    xmits: i64,
    /// The weight of the tasks it runs, whatever it reports.
    carried: u32,
    /// Its running tasks: the active's task id -> the simulator's task key.
    running: BTreeMap<TaskId, u64>,
    /// Outcomes to send with the next heartbeat.
    outbox: Vec<TaskOutcome>,
    used: u64,
}

impl Server {
    /// A task of `weight` ended or was stopped: its weight given back (by the real worker's
    /// guard; with the planted bug, more than was taken) and the weight carried lowered.
    /// Returns the count now.
    fn give_back(&mut self, weight: u32) -> i64 {
        self.xmits = self.xmits.saturating_sub(i64::from(weight));
        self.carried = self.carried.saturating_sub(weight);
        self.xmits
    }
}

/// The largest value `history` gives a budget during `[from, to]` (seconds): the one in force
/// at `from` and any set up to `to`. None when it was unlimited at some point of it.
fn allowed(history: &[(f64, Option<u64>)], from: f64, to: f64) -> Option<u64> {
    let at_start = history
        .iter()
        .rev()
        .find(|(t, _)| *t <= from)
        .map(|(_, v)| *v);
    let during = history
        .iter()
        .filter(|(t, _)| *t > from && *t <= to)
        .map(|(_, v)| *v);
    let mut most = 0u64;
    for v in at_start.into_iter().chain(during) {
        most = most.max(v?);
    }
    // Before any budget was set, none applies.
    at_start.is_some().then_some(most)
}

/// A task running on a simulated server.
#[derive(Debug)]
struct Running {
    server: u32,
    task: ReconstructionTask,
    /// The group's position in the table.
    slot: usize,
    len: u64,
    done: u64,
    step: u32,
    /// Bytes of the lost block the current step rebuilds.
    step_bytes: u64,
    /// The current step's charges.
    tickets: Vec<Ticket>,
    /// Source servers (not zeros).
    sources: Vec<u32>,
    /// The group's priority when the task was handed out.
    priority: usize,
    /// Cells per stripe from each rack (index), per the real read plan.
    cells: Vec<(usize, u32)>,
    uses: Vec<(Resource, f64)>,
    /// A source is across a lost link: the step fails once the read times out.
    unreachable: bool,
}

/// A fleet under simulation.
#[derive(Debug)]
pub struct Fleet {
    cfg: Config,
    clock: std::sync::Arc<ManualClock>,
    now_ns: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    rng: StdRng,
    kv: FleetKv,
    registry: Registry,
    scheduler: Scheduler,
    scan: ScanState,
    servers: Vec<Server>,
    tasks: BTreeMap<u64, Running>,
    next_task: u64,
    load: Load,
    faults: Vec<(Duration, Fault)>,
    /// Internal blocks short of copies: (group slot, index) -> copies missing.
    degraded: BTreeMap<(usize, u32), u32>,
    /// When the fleet was last whole again after a loss.
    healthy_at: Option<Duration>,
    lost_at: Option<Duration>,
    /// Links between datacenters that are down (lower number first).
    cut: std::collections::BTreeSet<(usize, usize)>,
    /// Servers being decommissioned, since when, and when the active found them all
    /// decommissioned.
    draining: Vec<u32>,
    drain_started: Option<Duration>,
    drained_at: Option<Duration>,
    /// Each budget's value from a time on (seconds; none: unlimited).
    budget_history: BTreeMap<String, Vec<(f64, Option<u64>)>>,
    /// Groups (slots) with a block rebuilt since the start.
    touched: std::collections::HashSet<usize>,
    record: Record,
}

/// What the run's checks found (see [`Outcome::checks`]).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Checks {
    /// Of each budgeted pair, its busiest whole second over the budget in force then (a
    /// change counts from a heartbeat and a scan round after it: the servers learn it at
    /// their next heartbeat).
    pub budget_peak_ratio: BTreeMap<String, f64>,
    /// Of each budgeted pair, the seconds over its budget by more than
    /// [`BUDGET_TOLERANCE`].
    pub seconds_over_budget: BTreeMap<String, u64>,
    /// The most weight any server carried at once, and the limit (`max-streams`).
    pub max_xmits_carried: u32,
    /// The lowest any server's xmits count went (below 0: it was given back more than it
    /// took).
    pub min_xmits: i64,
    pub xmits_limit: u32,
    /// Replies that handed out more weight than the server's room.
    pub over_handed: u64,
    /// Replies that served a group further from loss before one closer to it.
    pub order_inversions: u64,
    /// Whether every check holds.
    pub pass: bool,
}

/// What a run ended with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// Simulated seconds from the first loss to full redundancy (none: not reached).
    pub seconds_to_healthy: Option<f64>,
    /// Simulated seconds from a decommission to the active finding every server of it
    /// decommissioned (none: not reached, or none asked).
    pub seconds_to_decommissioned: Option<f64>,
    pub checks: Checks,
    /// Internal blocks still short of a copy at the end.
    pub still_degraded: usize,
    pub simulated_s: f64,
    pub record: Record,
}

impl Fleet {
    /// Registers the servers, places every group with the real placement, and delivers the
    /// servers' full reports: the fleet at time 0, whole.
    pub fn new(cfg: Config) -> anyhow::Result<Self> {
        let (clock, hand) = Clock::manual(1_700_000_000_000);
        let registry = Registry::new(cfg.dead_after).with_clock(clock.clone());
        let scheduler = Scheduler::new(cfg.scheduler)
            .with_clock(clock)
            .with_seed(cfg.seed ^ 0x5eed);
        let servers = (0..cfg.topology.servers.len())
            .map(|_| Server {
                up: true,
                ..Server::default()
            })
            .collect();
        let mut fleet = Self {
            load: Load::new(&cfg.topology, cfg.rates),
            clock: hand,
            now_ns: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            rng: StdRng::seed_from_u64(cfg.seed),
            kv: FleetKv::new(Groups::new(Vec::new())),
            registry,
            scheduler,
            scan: ScanState::default(),
            servers,
            tasks: BTreeMap::new(),
            next_task: 0,
            faults: Vec::new(),
            degraded: BTreeMap::new(),
            healthy_at: None,
            lost_at: None,
            cut: std::collections::BTreeSet::new(),
            draining: Vec::new(),
            drain_started: None,
            drained_at: None,
            budget_history: BTreeMap::new(),
            touched: std::collections::HashSet::new(),
            record: Record::default(),
            cfg,
        };
        fleet.register_all()?;
        fleet.place_all()?;
        let started = thread_cpu();
        fleet.report_all()?;
        fleet.record.report_cpu_s = thread_cpu() - started;
        fleet.record.rss_after_setup = crate::record::memory().0;
        fleet.kv.throttle(&ThrottleChange {
            racks: fleet.cfg.topology.rack_datacenters(),
            ..ThrottleChange::default()
        })?;
        Ok(fleet)
    }

    fn storage(&self, s: u32) -> Storage {
        let server = &self.servers[s as usize];
        let capacity = self.cfg.topology.capacity;
        Storage {
            capacity,
            used: server.used,
            available: capacity.saturating_sub(server.used),
            volumes: 1,
            failed_volumes: 0,
            xmits_in_progress: u32::try_from(server.xmits.max(0)).unwrap_or(u32::MAX),
            pool_used: server.used,
        }
    }

    fn register_all(&mut self) -> anyhow::Result<()> {
        for s in 0..self.servers.len() as u32 {
            let addr = format!("10.{}.{}.{}:7001", s >> 16, (s >> 8) & 255, s & 255);
            self.registry.register(
                Topology::id(s),
                &addr,
                self.cfg.topology.rack_name(s),
                self.storage(s),
            )?;
        }
        Ok(())
    }

    /// Every group placed by `placement::choose` over the registry's view, each server's
    /// free space lowered as blocks land on it.
    fn place_all(&mut self) -> anyhow::Result<()> {
        let started = thread_cpu();
        let policies: Vec<StoragePolicy> =
            self.cfg.groups.iter().map(|k| k.policy.clone()).collect();
        let mut groups = Groups::new(policies);
        groups.reserve(self.cfg.groups.iter().map(|k| k.count as usize).sum());
        let mut placer = placement::Placer::new(&self.registry.nodes());
        for (kind, k) in self.cfg.groups.clone().iter().enumerate() {
            let width = k.policy.width();
            for _ in 0..k.count {
                let length = self
                    .rng
                    .random_range(k.length.0..=k.length.1.max(k.length.0));
                let block = k.policy.block_len(length, 0);
                let chosen = placer.choose(
                    &placement::Request {
                        count: width,
                        min: width,
                        block_bytes: block,
                        exclude: &[],
                    },
                    &mut self.rng,
                )?;
                let mut servers = Vec::with_capacity(width);
                for (i, id) in chosen.iter().enumerate() {
                    let s = Topology::index(*id).ok_or_else(|| anyhow::anyhow!("id {id}"))?;
                    let index = if k.policy.layout().is_some() { i } else { 0 };
                    let bytes = k.policy.block_len(length, index);
                    placer.charge(*id, bytes);
                    self.servers[s as usize].used += bytes;
                    servers.push(s);
                }
                groups.push(kind as u8, length, &servers);
            }
        }
        self.kv = FleetKv::new(groups);
        self.record.placement_cpu_s = thread_cpu() - started;
        Ok(())
    }

    /// Each server's full report, in parts, as its blockserver sends it after registering.
    /// Servers are reported a batch at a time, so that the reports in memory at once stay
    /// bounded whatever the fleet's size.
    fn report_all(&mut self) -> anyhow::Result<()> {
        let n = self.servers.len();
        let groups = &self.kv.groups;
        let blocks: usize = (0..groups.len())
            .map(|g| groups.servers(g).iter().filter(|s| **s != NOWHERE).count())
            .sum();
        let per_server = (blocks / n.max(1)).max(1);
        let batch = (50_000_000 / per_server).clamp(1, n.max(1));
        for first in (0..n).step_by(batch) {
            let last = (first + batch).min(n);
            let mut reports: Vec<Vec<Reported>> = vec![Vec::new(); last - first];
            for g in 0..groups.len() {
                for s in groups.servers(g) {
                    let s = *s as usize;
                    if (first..last).contains(&s) {
                        let id =
                            GroupId(raftfs_core::namespace::blocks::FIRST_GROUP_ID.0 + g as u64);
                        for (index, length) in groups.blocks_on(g, s as u32) {
                            let r = Reported {
                                group: id,
                                index,
                                length,
                                generation: Generation::FIRST,
                            };
                            reports[s - first].push(r);
                        }
                    }
                }
            }
            for (i, report) in reports.into_iter().enumerate() {
                let id = Topology::id((first + i) as u32);
                let parts = report.len().div_ceil(REPORT_PART).max(1) as u32;
                for (part, chunk) in (0u32..).zip(report.chunks(REPORT_PART.max(1))) {
                    self.registry.full_report_part(id, 1, part, parts, chunk)?;
                }
                if report.is_empty() {
                    self.registry.full_report_part(id, 1, 0, 1, &[])?;
                }
            }
        }
        Ok(())
    }

    /// Schedules `fault` at `at`.
    pub fn at(&mut self, at: Duration, fault: Fault) {
        let i = self.faults.len();
        self.faults.push((at, fault));
        self.push(at, Event::Fault(i));
    }

    /// The namespace's groups.
    pub fn groups(&self) -> &Groups {
        &self.kv.groups
    }

    /// The simulated time now.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now_ns)
    }

    fn secs(&self) -> f64 {
        self.now_ns as f64 * 1e-9
    }

    fn push(&mut self, at: Duration, e: Event) {
        let at = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, e)));
    }

    /// Runs until the fleet is whole after its faults, or `limit` of simulated time.
    pub fn run(mut self, limit: Duration) -> anyhow::Result<Outcome> {
        for s in 0..self.servers.len() as u32 {
            let jitter = Duration::from_nanos(
                self.rng
                    .random_range(0..self.cfg.heartbeat.as_nanos().max(1) as u64),
            );
            self.push(jitter, Event::Heartbeat(s));
        }
        self.push(self.cfg.scan_every, Event::Scan);
        let pending_faults = self.faults.len();
        let mut faults_done = 0;
        while let Some(Reverse((at, _, event))) = self.queue.pop() {
            if Duration::from_nanos(at) > limit {
                break;
            }
            self.now_ns = at;
            self.clock.set(Duration::from_nanos(at));
            match event {
                Event::Heartbeat(s) => self.heartbeat(s)?,
                Event::Scan => self.scan_round()?,
                Event::Step(key, step) => self.step_done(key, step),
                Event::Debt(key, step, read) => self.settle(key, step, read),
                Event::Fault(i) => {
                    faults_done += 1;
                    self.fault(i)?;
                }
            }
            let healed = self.lost_at.is_none() || self.healthy_at.is_some();
            let drained = self.drain_started.is_none() || self.drained_at.is_some();
            let anything = self.lost_at.is_some() || self.drain_started.is_some();
            if faults_done == pending_faults && anything && healed && drained {
                break;
            }
        }
        (self.record.rss_end, self.record.rss_peak) = crate::record::memory();
        let checks = self.checks();
        Ok(Outcome {
            seconds_to_healthy: match (self.lost_at, self.healthy_at) {
                (Some(a), Some(b)) => Some((b - a).as_secs_f64()),
                _ => None,
            },
            seconds_to_decommissioned: match (self.drain_started, self.drained_at) {
                (Some(a), Some(b)) => Some((b - a).as_secs_f64()),
                _ => None,
            },
            checks,
            still_degraded: self.degraded.len(),
            simulated_s: self.secs(),
            record: self.record,
        })
    }

    fn fault(&mut self, i: usize) -> anyhow::Result<()> {
        let Some((_, fault)) = self.faults.get(i).cloned() else {
            return Ok(());
        };
        match fault {
            Fault::Kill(victims) => self.kill(&victims),
            Fault::Throttle(change) => {
                let settings = self.kv.throttle(&change)?;
                let mut now: BTreeMap<String, u64> = BTreeMap::new();
                for ((from, to), bps) in &settings.rack_pairs {
                    now.insert(format!("rack {from}>{to}"), *bps);
                }
                for ((from, to), bps) in &settings.datacenter_pairs {
                    now.insert(format!("datacenter {from}>{to}"), *bps);
                }
                let t = self.secs();
                let names: Vec<String> = now
                    .keys()
                    .chain(self.budget_history.keys())
                    .cloned()
                    .collect();
                for name in names {
                    let value = now.get(&name).copied();
                    let history = self.budget_history.entry(name.clone()).or_default();
                    if history.last().map(|(_, v)| *v) != Some(value) {
                        history.push((t, value));
                    }
                    self.record.budgeted.entry(name).or_default();
                }
            }
            Fault::LinkDown(a, b) => {
                self.cut.insert((a.min(b), a.max(b)));
            }
            Fault::LinkUp(a, b) => {
                self.cut.remove(&(a.min(b), a.max(b)));
            }
            Fault::Decommission(servers) => {
                let now_ms = Clock::Manual(self.clock.clone()).now_ms();
                for s in &servers {
                    self.kv.admin(
                        Topology::id(*s),
                        raftfs_core::namespace::admin_state::AdminChange::Decommission,
                        now_ms,
                    )?;
                }
                self.draining.extend(servers);
                self.drain_started.get_or_insert(self.now());
                self.drained_at = None;
            }
        }
        Ok(())
    }

    /// What the run's checks found: each budget's busiest second against the budget in
    /// force, the weight carried against the limit, the hand-outs' order.
    fn checks(&self) -> Checks {
        let grace = (self.cfg.heartbeat + self.cfg.scan_every).as_secs_f64();
        let mut c = Checks {
            max_xmits_carried: self.record.max_xmits,
            min_xmits: self.record.min_xmits,
            xmits_limit: self.cfg.scheduler.max_streams,
            over_handed: self.record.over_handed,
            order_inversions: self.record.order_inversions,
            ..Checks::default()
        };
        for (name, series) in &self.record.budgeted {
            let history = self.budget_history.get(name).map_or(&[][..], Vec::as_slice);
            let mut peak: f64 = 0.0;
            let mut over = 0u64;
            for (second, bytes) in series.per_second.iter().enumerate() {
                let Some(allowed) = allowed(history, second as f64 - grace, second as f64 + 1.0)
                else {
                    continue;
                };
                let ratio = bytes / allowed.max(1) as f64;
                peak = peak.max(ratio);
                if ratio > 1.0 + BUDGET_TOLERANCE {
                    over += 1;
                }
            }
            c.budget_peak_ratio.insert(name.clone(), peak);
            c.seconds_over_budget.insert(name.clone(), over);
        }
        c.pass = c.seconds_over_budget.values().all(|n| *n == 0)
            && c.max_xmits_carried <= c.xmits_limit
            && c.min_xmits >= 0
            && c.over_handed == 0
            && c.order_inversions == 0;
        c
    }

    /// After a scan round: whether the active now finds every server being decommissioned
    /// decommissioned.
    fn note_drained(&mut self) {
        if self.draining.is_empty() || self.drained_at.is_some() {
            return;
        }
        let nodes = self.registry.nodes();
        let done = self.draining.iter().all(|s| {
            nodes
                .binary_search_by_key(&Topology::id(*s), |n| n.id)
                .ok()
                .and_then(|i| nodes.get(i))
                .is_some_and(|n| n.decommissioned())
        });
        if done {
            self.drained_at = Some(self.now());
        }
    }

    /// Servers stop: their tasks end with them, and every block they held is short a copy.
    fn kill(&mut self, victims: &[u32]) {
        // Each server once, and only those still up: a block lost twice is not owed twice.
        let victims: std::collections::BTreeSet<u32> = victims
            .iter()
            .copied()
            .filter(|v| self.servers.get(*v as usize).is_some_and(|s| s.up))
            .collect();
        for v in &victims {
            let Some(server) = self.servers.get_mut(*v as usize) else {
                continue;
            };
            server.up = false;
            let running: Vec<u64> = server.running.values().copied().collect();
            server.running.clear();
            server.xmits = 0;
            server.carried = 0;
            for key in running {
                if let Some(t) = self.tasks.remove(&key) {
                    self.load.leave(&t.uses);
                }
            }
        }
        let mut lost = vec![false; self.servers.len()];
        for v in &victims {
            if let Some(l) = lost.get_mut(*v as usize) {
                *l = true;
            }
        }
        let groups = &self.kv.groups;
        for g in 0..groups.len() {
            if !groups
                .servers(g)
                .iter()
                .any(|s| lost.get(*s as usize).copied().unwrap_or(false))
            {
                continue;
            }
            for v in &victims {
                for (index, _) in groups.blocks_on(g, *v) {
                    *self.degraded.entry((g, index)).or_default() += 1;
                }
            }
        }
        if !self.degraded.is_empty() {
            self.lost_at.get_or_insert(self.now());
            self.healthy_at = None;
        }
    }

    fn scan_round(&mut self) -> anyhow::Result<()> {
        let started = thread_cpu();
        scan_step(
            &self.kv,
            &self.registry,
            &self.scheduler,
            &mut self.scan,
            0,
            self.cfg.scan_groups,
        )?;
        self.record.scan_cpu_s += thread_cpu() - started;
        self.record.scan_rounds += 1;
        self.note_drained();
        self.push(self.now() + self.cfg.scan_every, Event::Scan);
        Ok(())
    }

    fn heartbeat(&mut self, s: u32) -> anyhow::Result<()> {
        if !self.servers[s as usize].up {
            return Ok(());
        }
        let id = Topology::id(s);
        let storage = self.storage(s);
        let outcomes = std::mem::take(&mut self.servers[s as usize].outbox);
        let started = thread_cpu();
        let delete = heartbeat::receive(&self.registry, &self.scheduler, id, storage, &outcomes)?;
        let orders = heartbeat::orders(
            &self.registry,
            &self.scheduler,
            id,
            storage.xmits_in_progress,
            1,
        );
        self.record.heartbeat_cpu_s += thread_cpu() - started;
        self.record.heartbeats += 1;
        if !delete.is_empty() {
            let removed: Vec<Reported> = delete
                .iter()
                .map(|(group, index, generation)| Reported {
                    group: *group,
                    index: *index,
                    length: 0,
                    generation: *generation,
                })
                .collect();
            self.registry.incremental(id, &[], &removed)?;
        }
        // The weights a reply may carry: up to the limit, or one task to an idle server.
        let allowed = self
            .cfg
            .scheduler
            .max_streams
            .saturating_sub(storage.xmits_in_progress);
        let handed: u32 = orders.tasks.iter().map(|t| t.weight).sum();
        let alone = storage.xmits_in_progress == 0 && orders.tasks.len() == 1;
        if handed > allowed && !alone {
            self.record.over_handed += 1;
        }
        self.record.max_tasks_per_heartbeat =
            self.record.max_tasks_per_heartbeat.max(orders.tasks.len());
        let now = self.clock_now();
        let server = &mut self.servers[s as usize];
        server.budgets.update_from(1, &orders.throttle, now);
        for task_id in &orders.cancel {
            if let Some(key) = server.running.remove(task_id) {
                if let Some(t) = self.tasks.remove(&key) {
                    let now = server.give_back(t.task.weight);
                    self.record.min_xmits = self.record.min_xmits.min(now);
                    self.load.leave(&t.uses);
                }
                self.record.tasks_cancelled += 1;
            }
        }
        let names: Vec<String> = orders
            .throttle
            .budgets
            .iter()
            .map(|b| b.name.clone())
            .collect();
        for name in &names {
            let t = self.secs();
            self.record.budget_seen_s.entry(name.clone()).or_insert(t);
        }
        // The order is judged among groups none of whose blocks was rebuilt since the loss
        // (a partly rebuilt group is further from loss now than the scan that queued it saw).
        let mut last_priority: Option<usize> = None;
        for task in orders.tasks {
            let slot = self.kv.groups.slot_of(task.group);
            let p = slot.map_or(0, |slot| self.priority_of(slot));
            let untouched = slot.is_some_and(|slot| !self.touched.contains(&slot));
            if untouched {
                if last_priority.is_some_and(|last| p < last) {
                    self.record.order_inversions += 1;
                }
                last_priority = Some(p);
            }
            self.start(s, task, p);
        }
        // The shares of the servers that read across the budget (another's share moves
        // nothing across it), summed about 100 times a simulated second (every heartbeat
        // of a small fleet; at every one of 10,000 servers the sum was most of a run).
        let every = (self.servers.len() / 100).max(1) as u64;
        let topo = &self.cfg.topology;
        for name in names
            .iter()
            .filter(|_| self.record.heartbeats.is_multiple_of(every))
        {
            let sum: f64 = self
                .servers
                .iter()
                .enumerate()
                .filter(|(_, x)| x.up)
                .filter(|(at, x)| {
                    let mine = topo.servers[*at];
                    x.running.values().any(|key| {
                        self.tasks.get(key).is_some_and(|t| {
                            t.cells
                                .iter()
                                .any(|(rack, _)| budget_covers(name, topo, *rack, mine))
                        })
                    })
                })
                .filter_map(|(_, x)| x.budgets.share_rate(name))
                .sum();
            let max = self.record.max_share_sum.entry(name.clone()).or_default();
            *max = max.max(sum);
        }
        self.push(self.now() + self.cfg.heartbeat, Event::Heartbeat(s));
        Ok(())
    }

    fn clock_now(&self) -> std::time::Instant {
        Clock::Manual(self.clock.clone()).now()
    }

    /// A task arrives at server `s`: refused past the limit, else started.
    fn start(&mut self, s: u32, task: ReconstructionTask, priority: usize) {
        let Some(slot) = self.kv.groups.slot_of(task.group) else {
            return;
        };
        let server = &mut self.servers[s as usize];
        let refuse = task.validate().is_err()
            || server
                .budgets
                .max_tasks()
                .is_some_and(|m| server.running.len() >= m as usize);
        if refuse {
            self.record.refused_busy += 1;
            server.outbox.push(TaskOutcome {
                task_id: task.id,
                group: task.group,
                index: task.index,
                error: Some("busy".into()),
            });
            return;
        }
        let my_rack = self.cfg.topology.servers[s as usize];
        let cells: Vec<(usize, u32)> = task
            .cells_by_rack(self.cfg.topology.rack_name(s))
            .into_iter()
            .filter_map(|(rack, n)| Some((self.cfg.topology.rack_named(&rack)?, n)))
            .collect();
        let sources: Vec<u32> = task
            .sources
            .iter()
            .filter(|src| !src.is_zeros())
            .filter_map(|src| Topology::index(src.node))
            .collect();
        self.record.handed_out(priority, self.secs());
        let uses = self.uses(s, my_rack, &sources, &cells);
        let len = task
            .policy
            .block_len(task.group_length, task.index as usize);
        let server = &mut self.servers[s as usize];
        let taken = if self.cfg.bugs.unweighted_xmits {
            1
        } else {
            task.weight
        };
        server.xmits = server.xmits.saturating_add(i64::from(taken));
        server.carried = server.carried.saturating_add(task.weight);
        self.record.max_xmits = self.record.max_xmits.max(server.carried);
        let key = self.next_task;
        self.next_task += 1;
        server.running.insert(task.id, key);
        self.record.max_running = self.record.max_running.max(server.running.len());
        self.load.join(&uses);
        self.tasks.insert(
            key,
            Running {
                server: s,
                task,
                slot,
                len,
                done: 0,
                step: 0,
                step_bytes: 0,
                tickets: Vec::new(),
                priority,
                sources,
                cells,
                uses,
                unreachable: false,
            },
        );
        self.next_step(key);
    }

    /// The resources a task on `s` uses, and bytes per byte rebuilt on each.
    fn uses(
        &self,
        s: u32,
        my_rack: usize,
        sources: &[u32],
        cells: &[(usize, u32)],
    ) -> Vec<(Resource, f64)> {
        let topo = &self.cfg.topology;
        let my_dc = topo.datacenter_of(my_rack);
        let crossing: u32 = cells.iter().map(|(_, n)| n).sum();
        let mut uses = vec![
            (Resource::Disk(s), 1.0),
            (Resource::NicIn(s), f64::from(crossing)),
        ];
        for src in sources {
            uses.push((Resource::Disk(*src), 1.0));
            uses.push((Resource::NicOut(*src), 1.0));
        }
        let mut into_rack = 0u32;
        let mut links: BTreeMap<usize, u32> = BTreeMap::new();
        for (rack, n) in cells {
            if *rack == my_rack {
                continue;
            }
            into_rack += n;
            uses.push((Resource::RackOut(*rack), f64::from(*n)));
            let dc = topo.datacenter_of(*rack);
            if dc != my_dc {
                *links.entry(dc).or_default() += n;
            }
        }
        if into_rack > 0 {
            uses.push((Resource::RackIn(my_rack), f64::from(into_rack)));
        }
        for (dc, n) in links {
            uses.push((Resource::Link(dc, my_dc), f64::from(n)));
        }
        uses
    }

    /// The group's priority now, by the copies that are up (0: one loss from data loss).
    fn priority_of(&self, slot: usize) -> usize {
        let groups = &self.kv.groups;
        let policy = groups.policy(slot);
        let needed = policy.data_blocks();
        let erasure_coded = policy.layout().is_some();
        let mut live = std::collections::BTreeSet::new();
        let mut copies = 0usize;
        let length = groups.length(slot);
        for (i, s) in groups.servers(slot).iter().enumerate() {
            // A block the layout leaves empty is present wherever its server is.
            let empty = erasure_coded && policy.block_len(length, i) == 0;
            if *s != NOWHERE && (empty || self.servers[*s as usize].up) {
                live.insert(if erasure_coded { i } else { 0 });
                copies += 1;
            }
        }
        let live = if erasure_coded { live.len() } else { copies };
        raftfs_metaserver::redundancy::scheduler::priority(live, needed).unwrap_or(0)
    }

    /// Starts the next step of task `key`: its reads charged to the server's buckets, as
    /// the worker charges every cell before it reads it.
    fn next_step(&mut self, key: u64) {
        let now = self.clock_now();
        let Some(t) = self.tasks.get_mut(&key) else {
            return;
        };
        let bytes = self.cfg.step_bytes.min(t.len - t.done).max(1);
        let topo = &self.cfg.topology;
        let my_rack = topo.servers[t.server as usize];
        let my_dc = topo.datacenter_of(my_rack);
        if t.cells.iter().any(|(rack, _)| {
            let dc = topo.datacenter_of(*rack);
            self.cut.contains(&(dc.min(my_dc), dc.max(my_dc)))
        }) {
            t.step += 1;
            t.unreachable = true;
            let step = t.step;
            self.push(self.now() + UNREACHABLE_AFTER, Event::Step(key, step));
            return;
        }
        let server = &mut self.servers[t.server as usize];
        let ignore = self.cfg.bugs.ignore_budgets;
        t.tickets = t
            .cells
            .iter()
            .filter(|_| !ignore)
            .map(|(rack, n)| {
                let from = if *rack == my_rack {
                    ""
                } else {
                    topo.racks[*rack].0.as_str()
                };
                server.budgets.charge_read(bytes * u64::from(*n), from, now)
            })
            .collect();
        t.step += 1;
        t.step_bytes = bytes;
        let step = t.step;
        self.settle(key, step, true);
    }

    /// The step's charges (its reads, or its write) are paid when the buckets they went to
    /// reach them, at their rates now; until then the task looks again every
    /// [`DEBT_SLICE`], as the worker does, so that new shares apply to the wait under way.
    fn settle(&mut self, key: u64, step: u32, read: bool) {
        let now = self.clock_now();
        let Some(t) = self.tasks.get(&key).filter(|t| t.step == step) else {
            return;
        };
        let budgets = &self.servers[t.server as usize].budgets;
        let debt = t
            .tickets
            .iter()
            .map(|ticket| budgets.owed(ticket, now))
            .max()
            .unwrap_or_default();
        if !debt.is_zero() {
            let at = self.now() + debt.min(DEBT_SLICE);
            self.push(at, Event::Debt(key, step, read));
        } else if read {
            self.move_bytes(key);
        } else {
            self.push(self.now(), Event::Step(key, step));
        }
    }

    /// The step's reads move at the task's share of what it uses; then its write is charged.
    fn move_bytes(&mut self, key: u64) {
        let now = self.clock_now();
        let Some(t) = self.tasks.get_mut(&key) else {
            return;
        };
        let bytes = t.step_bytes;
        let rate = self.load.task_rate(&t.uses);
        let moving = bytes as f64 / rate;
        let from = self.now_ns as f64 * 1e-9;
        let to = from + moving;
        let topo = &self.cfg.topology;
        let my_rack = topo.servers[t.server as usize];
        for (rack, n) in &t.cells {
            let moved = (bytes * u64::from(*n)) as f64;
            let (a, b) = (&topo.racks[*rack].0, &topo.racks[my_rack].0);
            *self
                .record
                .rack_pairs
                .entry(format!("{a}>{b}"))
                .or_default() += moved;
            if *rack == my_rack {
                continue;
            }
            for (name, series) in self.record.budgeted.iter_mut() {
                if budget_covers(name, topo, *rack, my_rack) {
                    series.spread(moved, from, to);
                }
            }
            let (da, db) = (topo.datacenter_of(*rack), topo.datacenter_of(my_rack));
            if da != db {
                self.record
                    .datacenter_pairs
                    .entry(format!("{}>{}", topo.datacenters[da], topo.datacenters[db]))
                    .or_default()
                    .spread(moved, from, to);
            }
        }
        t.done += bytes;
        let step = t.step;
        let written_at = now + Duration::from_secs_f64(moving);
        t.tickets = if self.cfg.bugs.ignore_budgets {
            Vec::new()
        } else {
            vec![
                self.servers[t.server as usize]
                    .budgets
                    .charge_write(bytes, written_at),
            ]
        };
        self.push(Duration::from_secs_f64(to), Event::Debt(key, step, false));
    }

    fn step_done(&mut self, key: u64, step: u32) {
        let Some(t) = self.tasks.get(&key) else {
            return;
        };
        if t.step != step {
            return;
        }
        let source_lost = t.sources.iter().any(|s| !self.servers[*s as usize].up);
        if t.unreachable {
            self.end(key, Some("a source is unreachable".into()));
        } else if source_lost {
            self.end(key, Some("a source is gone".into()));
        } else if t.done >= t.len {
            self.end(key, None);
        } else {
            self.next_step(key);
        }
    }

    /// Task `key` ended: its xmits given back, its outcome queued; a rebuilt block is
    /// reported at once (the blockserver's incremental report) and takes the lost copy's
    /// place.
    fn end(&mut self, key: u64, error: Option<String>) {
        let Some(t) = self.tasks.remove(&key) else {
            return;
        };
        self.load.leave(&t.uses);
        let s = t.server;
        let server = &mut self.servers[s as usize];
        server.running.remove(&t.task.id);
        let count = server.give_back(t.task.weight);
        self.record.min_xmits = self.record.min_xmits.min(count);
        server.outbox.push(TaskOutcome {
            task_id: t.task.id,
            group: t.task.group,
            index: t.task.index,
            error: error.clone(),
        });
        if error.is_some() {
            self.record.tasks_failed += 1;
            return;
        }
        server.used += t.len;
        let added = Reported {
            group: t.task.group,
            index: t.task.index,
            length: t.len,
            generation: Generation::FIRST,
        };
        // The registry knows the node: it registered at the start and never left.
        let _ = self.registry.incremental(Topology::id(s), &[added], &[]);
        self.record.blocks_rebuilt += 1;
        self.touched.insert(t.slot);
        self.record.rebuilt(t.priority, self.secs());
        self.record.bytes_rebuilt += t.len as f64;
        // The copy it replaces: on a server that is down, or being decommissioned.
        let gone = self.kv.groups.servers(t.slot).iter().copied().find(|x| {
            *x != NOWHERE
                && (!self.servers[*x as usize].up || self.draining.contains(x))
                && self.slot_holds(t.slot, *x, t.task.index)
        });
        if let Some(from) = gone {
            self.kv.groups.moved(t.slot, t.task.index, from, s);
        }
        let k = (t.slot, t.task.index);
        if let Some(n) = self.degraded.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                self.degraded.remove(&k);
            }
        }
        if self.degraded.is_empty() && self.lost_at.is_some() && self.healthy_at.is_none() {
            self.healthy_at = Some(self.now());
        }
    }

    fn slot_holds(&self, slot: usize, server: u32, index: u32) -> bool {
        self.kv
            .groups
            .blocks_on(slot, server)
            .iter()
            .any(|(i, _)| *i == index)
    }
}

/// Whether budget `name` (`rack a>b` or `datacenter a>b`) covers bytes from rack `from` into
/// rack `to`.
fn budget_covers(name: &str, topo: &Topology, from: usize, to: usize) -> bool {
    let pair = |s: &str| s.split_once('>').map(|(a, b)| (a.to_owned(), b.to_owned()));
    if let Some(p) = name.strip_prefix("rack ").and_then(pair) {
        return topo.racks[from].0 == p.0 && topo.racks[to].0 == p.1;
    }
    if let Some(p) = name.strip_prefix("datacenter ").and_then(pair) {
        let (a, b) = (topo.datacenter_of(from), topo.datacenter_of(to));
        return topo.datacenters[a] == p.0 && topo.datacenters[b] == p.1;
    }
    false
}
