//! The metaserver's pages as values: each gathered from what this member holds (Raft's
//! metrics, the registry, the scheduler, the last scan pass, the workers), rendered by its
//! template or sent as JSON. Nothing here calls another server, so a page costs what its
//! gathering costs on this member alone, also with thousands of blockservers.

use std::collections::BTreeMap;

use askama::Template;
use openraft::ServerState;
use raftfs_core::fsck::FileHealth;
use raftfs_core::member::MemberRole;
use raftfs_runtime::WorkerStatus;
use raftfs_runtime::ui::{Answered, query_escape, show};
use serde::Serialize;

use crate::journal::MemberId;
use crate::namespace::admin_state::Admin;
use crate::namespace::kv::Cf;
use crate::namespace::throttle::ThrottleSettings;
use crate::node::MetaNode;
use crate::observer::Role;
use crate::redundancy::{PassReport, PolicyCensus};
use crate::registry::NodeView;

/// Who answered, as every page says it.
pub fn answered(node: &MetaNode) -> Answered {
    Answered {
        server: "metaserver",
        id: node.id.get(),
        role: role_name(node.role()).to_owned(),
        state_id: Some(node.sm.applied_index()),
        version: raftfs_core::level::binary_version(),
        at_ms: raftfs_runtime::simulation::now_ms(),
        json_href: "?format=json".to_owned(),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Active => "active",
        Role::Standby => "standby",
        Role::Observer => "observer",
        Role::Outside => "outside",
    }
}

/// This member's own position in the journal.
#[derive(Debug, Clone, Serialize)]
pub struct ThisMember {
    pub addr: String,
    /// Raft's state: leader, follower, learner, candidate, shutdown.
    pub raft_state: &'static str,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub nameservice: String,
}

/// A member as this member sees it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    pub id: u64,
    pub addr: String,
    /// `voter` or `observer`.
    pub role: &'static str,
    pub active: bool,
    /// The log index the active knows it to hold (the active's view only).
    pub matched: Option<u64>,
    /// Entries behind the active's log (the active's view only).
    pub lag: Option<u64>,
}

/// Objects as RocksDB estimates them, exact in the scan's census.
#[derive(Debug, Clone, Serialize)]
pub struct Objects {
    /// Files, directories and symbolic links (inodes).
    pub inodes: Option<u64>,
    pub block_groups: Option<u64>,
}

/// The blockservers in a few numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetSummary {
    pub registered: u64,
    pub live: u64,
    pub dead: u64,
    pub decommissioning: u64,
    pub decommissioned: u64,
    pub in_maintenance: u64,
    pub racks: u64,
    pub capacity: u64,
    pub used: u64,
    pub available: u64,
}

impl FleetSummary {
    fn of(nodes: &[NodeView]) -> Self {
        let mut s = FleetSummary::default();
        let mut racks = std::collections::BTreeSet::new();
        for n in nodes {
            s.registered += 1;
            racks.insert(n.rack.as_str());
            if n.live {
                s.live += 1;
                s.capacity = s.capacity.saturating_add(n.storage.capacity);
                s.used = s.used.saturating_add(n.storage.used);
                s.available = s.available.saturating_add(n.storage.available);
            } else {
                s.dead += 1;
            }
            match n.admin {
                Admin::InService => {}
                Admin::Decommissioning if n.decommissioned() => s.decommissioned += 1,
                Admin::Decommissioning => s.decommissioning += 1,
                Admin::InMaintenance => s.in_maintenance += 1,
            }
        }
        s.racks = racks.len() as u64;
        s
    }

    pub fn used_pct(&self) -> u64 {
        show::percent(self.used, self.capacity)
    }

    pub fn capacity_text(&self) -> String {
        show::bytes(self.capacity)
    }

    pub fn used_text(&self) -> String {
        show::bytes(self.used)
    }

    pub fn available_text(&self) -> String {
        show::bytes(self.available)
    }
}

/// The health of the closed groups, from the active's last whole scan pass.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// None until a pass ends on the active (on another member: always none).
    pub pass: Option<PassReport>,
    pub total: PolicyCensus,
}

impl Health {
    fn of(node: &MetaNode) -> Self {
        let pass = node.blocks.last_pass();
        let total = pass.as_ref().map(PassReport::total).unwrap_or_default();
        Self { pass, total }
    }

    /// `healthy`, `degraded` or `missing`: the worst state any group is in; `unknown`
    /// before a whole pass has ended on this member (a standby never scans).
    pub fn verdict(&self) -> &'static str {
        if self.pass.is_none() {
            "unknown"
        } else if self.total.missing > 0 {
            "missing"
        } else if self.total.degraded > 0 {
            "degraded"
        } else {
            "healthy"
        }
    }

    pub fn pass_age(&self, now_ms: impl std::borrow::Borrow<u64>) -> String {
        let now_ms = *now_ms.borrow();
        self.pass.as_ref().map_or_else(
            || "no pass yet".to_owned(),
            |p| show::ago(p.ended_ms, now_ms),
        )
    }
}

/// `/ui`: the cluster, the namespace, the fleet and its health at a glance.
#[derive(Debug, Template, Serialize)]
#[template(path = "meta-overview.html")]
pub struct Overview {
    pub answered: Answered,
    pub this: ThisMember,
    pub members: Vec<MemberRow>,
    pub objects: Objects,
    pub fleet: Option<FleetSummary>,
    pub health: Health,
    /// Groups queued for reconstruction by priority, and those in flight (the active's).
    pub queued: [u64; 3],
    pub in_flight: u64,
    /// The cluster's format level (DESIGN §11); none when it could not be read.
    pub level: Option<u32>,
}

impl Overview {
    pub fn gather(node: &MetaNode, level: Option<u32>) -> Self {
        let answered = answered(node);
        let (this, members) = members(node);
        let active = node.role() == Role::Active;
        let nodes = active.then(|| node.blocks.registry.nodes());
        let (status, _) = node.blocks.scheduler.status();
        Self {
            answered,
            this,
            members,
            objects: Objects {
                inodes: node.sm.estimated_keys(Cf::Inodes),
                block_groups: node.sm.estimated_keys(Cf::BlockGroups),
            },
            fleet: nodes.as_deref().map(FleetSummary::of),
            health: Health::of(node),
            queued: if active { status.queued } else { [0; 3] },
            in_flight: if active { status.in_flight } else { 0 },
            level,
        }
    }

    pub fn is_active(&self) -> bool {
        self.answered.role == "active"
    }

    pub fn census_rows(&self) -> Vec<(String, PolicyCensus)> {
        census_rows(&self.health)
    }
}

fn census_rows(health: &Health) -> Vec<(String, PolicyCensus)> {
    health
        .pass
        .as_ref()
        .map(|p| {
            p.census
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// This member's journal position and the members as its Raft metrics hold them.
fn members(node: &MetaNode) -> (ThisMember, Vec<MemberRow>) {
    let m = node.raft.metrics();
    let m = m.borrow();
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<MemberId> = membership.voter_ids().collect();
    let last_log = m.last_log_index.unwrap_or(0);
    let rows = membership
        .nodes()
        .map(|(id, n)| {
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|l| l.index)
                .or_else(|| (*id == node.id).then(|| node.sm.applied_index()));
            let role = if voters.contains(id) {
                MemberRole::Voter
            } else {
                MemberRole::Observer
            };
            MemberRow {
                id: id.get(),
                addr: n.addr.clone(),
                role: role.as_str(),
                active: m.current_leader == Some(*id),
                matched,
                lag: matched.map(|i| last_log.saturating_sub(i)),
            }
        })
        .collect();
    let this = ThisMember {
        addr: node.advertise_addr.clone(),
        raft_state: match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Learner => "learner",
            ServerState::Candidate => "candidate",
            ServerState::Shutdown => "shutdown",
        },
        term: m.current_term,
        leader: m.current_leader.map(MemberId::get),
        last_log_index: last_log,
        applied_index: node.sm.applied_index(),
        snapshot_index: m.snapshot.map_or(0, |l| l.index),
        purged_index: m.purged.map_or(0, |l| l.index),
        nameservice: node.nameservice_name().to_owned(),
    };
    (this, rows)
}

/// A blockserver as the active sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRow {
    pub id: u64,
    pub addr: String,
    pub live: bool,
    /// `in service`, `decommissioning`, `decommissioned`, `in maintenance`.
    pub admin: &'static str,
    pub capacity: u64,
    pub used: u64,
    pub available: u64,
    pub blocks: u64,
    pub volumes: u32,
    pub failed_volumes: u32,
    pub xmits_in_progress: u32,
    /// Milliseconds since it was last heard from (none: it registered after the list was
    /// read, moments ago).
    pub silent_ms: Option<u64>,
    pub registered_ms: u64,
    pub fully_reported: bool,
    /// Of a decommissioning server: the blocks groups still need from it.
    pub drain_remaining: Option<u64>,
}

impl ServerRow {
    fn of(n: &NodeView, silent_ms: Option<u64>) -> Self {
        Self {
            id: n.id.get(),
            addr: n.addr.clone(),
            live: n.live,
            admin: admin_name(n),
            capacity: n.storage.capacity,
            used: n.storage.used,
            available: n.storage.available,
            blocks: n.blocks as u64,
            volumes: n.storage.volumes,
            failed_volumes: n.storage.failed_volumes,
            xmits_in_progress: n.storage.xmits_in_progress,
            silent_ms,
            registered_ms: n.registered_ms,
            fully_reported: n.fully_reported,
            drain_remaining: n.drain_remaining,
        }
    }

    pub fn used_pct(&self) -> u64 {
        show::percent(self.used, self.capacity)
    }

    pub fn usage_text(&self) -> String {
        format!(
            "{} of {}",
            show::bytes(self.used),
            show::bytes(self.capacity)
        )
    }

    pub fn heard(&self) -> String {
        self.silent_ms.map_or_else(
            || "just now".to_owned(),
            |ms| show::duration_ms(ms) + " ago",
        )
    }
}

fn admin_name(n: &NodeView) -> &'static str {
    match n.admin {
        Admin::InService => "in service",
        Admin::Decommissioning if n.decommissioned() => "decommissioned",
        Admin::Decommissioning => "decommissioning",
        Admin::InMaintenance => "in maintenance",
    }
}

/// One rack's blockservers.
#[derive(Debug, Clone, Serialize)]
pub struct Rack {
    pub rack: String,
    pub live: u64,
    pub dead: u64,
    pub servers: Vec<ServerRow>,
}

/// `/ui/blockservers`: every registered blockserver by rack (the active's view).
#[derive(Debug, Template, Serialize)]
#[template(path = "meta-blockservers.html")]
pub struct BlockServers {
    pub answered: Answered,
    pub summary: FleetSummary,
    pub dead_after_ms: u64,
    pub racks: Vec<Rack>,
}

impl BlockServers {
    pub fn gather(node: &MetaNode) -> Self {
        let registry = &node.blocks.registry;
        let nodes = registry.nodes();
        let silences = registry.silences_ms();
        let mut racks: BTreeMap<String, Rack> = BTreeMap::new();
        for n in &nodes {
            let rack = racks.entry(n.rack.clone()).or_insert_with(|| Rack {
                rack: n.rack.clone(),
                live: 0,
                dead: 0,
                servers: Vec::new(),
            });
            if n.live {
                rack.live += 1;
            } else {
                rack.dead += 1;
            }
            rack.servers
                .push(ServerRow::of(n, silences.get(&n.id).copied()));
        }
        for r in racks.values_mut() {
            r.servers.sort_by_key(|s| s.id);
        }
        Self {
            answered: answered(node),
            summary: FleetSummary::of(&nodes),
            dead_after_ms: u64::try_from(registry.dead_after().as_millis()).unwrap_or(u64::MAX),
            racks: racks.into_values().collect(),
        }
    }
}

/// A file with degraded or missing groups.
#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub path: String,
    pub policy: String,
    pub length: u64,
    pub under_construction: bool,
    pub groups: u64,
    pub degraded: u64,
    pub missing: u64,
}

impl FileRow {
    pub fn of(f: &FileHealth) -> Self {
        Self {
            path: f.path.clone(),
            policy: f.policy.to_string(),
            length: f.length,
            under_construction: f.under_construction,
            groups: f.groups,
            degraded: f.degraded,
            missing: f.missing,
        }
    }

    /// The link to this file's own `fsck` (its path, query-escaped).
    pub fn href(&self) -> String {
        format!("/ui/health?path={}", query_escape(&self.path))
    }
}

/// One page of `fsck` below a path, on the health page.
#[derive(Debug, Clone, Serialize)]
pub struct FsckPage {
    pub path: String,
    pub files: u64,
    pub groups: u64,
    pub healthy: u64,
    pub degraded: u64,
    pub missing: u64,
    pub unhealthy: Vec<FileRow>,
    /// Where the next page starts, if the walk stopped before the end.
    pub next_after: Option<String>,
}

impl FsckPage {
    /// The link to the page after this one.
    pub fn next_href(&self) -> Option<String> {
        self.next_after.as_ref().map(|a| {
            format!(
                "/ui/health?path={}&after={}",
                query_escape(&self.path),
                query_escape(a)
            )
        })
    }
}

/// `/ui/health`: the groups' health by policy from the last pass, and on a simple-mode
/// cluster the files with degraded or missing groups below a path (`?path=`, `?after=`).
#[derive(Debug, Template, Serialize)]
#[template(path = "meta-health.html")]
pub struct HealthPage {
    pub answered: Answered,
    pub health: Health,
    /// None on a secured cluster: this port authenticates nobody, and file names are
    /// for the admins who may run `metactl fsck`.
    pub fsck: Option<FsckPage>,
    pub files_listed: bool,
}

impl HealthPage {
    pub fn census_rows(&self) -> Vec<(String, PolicyCensus)> {
        census_rows(&self.health)
    }

    pub fn new(node: &MetaNode, fsck: Option<FsckPage>, files_listed: bool) -> Self {
        Self {
            answered: answered(node),
            health: Health::of(node),
            fsck,
            files_listed,
        }
    }
}

/// A rack pair's or datacenter pair's budget.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// `rack` or `datacenter`.
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    pub bytes_per_sec: u64,
}

impl Budget {
    pub fn rate(&self) -> String {
        show::rate(self.bytes_per_sec)
    }
}

/// What a rack pair carried for rebuilds, measured by the blockservers of `to`, beside its
/// budget if one is set.
#[derive(Debug, Clone, Serialize)]
pub struct MeasuredPair {
    pub from: String,
    pub to: String,
    pub bytes_per_sec: u64,
    /// Since the servers of `to` that this member hears from started.
    pub total_bytes: u64,
    pub budget_bytes_per_sec: Option<u64>,
}

impl MeasuredPair {
    pub fn rate(&self) -> String {
        show::rate(self.bytes_per_sec)
    }

    pub fn total(&self) -> String {
        show::bytes(self.total_bytes)
    }

    pub fn budget(&self) -> String {
        self.budget_bytes_per_sec
            .map_or_else(|| "none".to_owned(), show::rate)
    }

    /// Whether the rate is over the budget (a window's average may pass it a little).
    pub fn over_budget(&self) -> bool {
        self.budget_bytes_per_sec
            .is_some_and(|b| self.bytes_per_sec > b)
    }
}

/// A server's share of the running work.
#[derive(Debug, Clone, Serialize)]
pub struct ServerWork {
    pub id: u64,
    pub rack: String,
    pub live: bool,
    pub xmits_in_progress: u32,
    pub tasks_in_flight: u64,
}

/// `/ui/reconstruction`: the active's queues, its tasks in flight, the servers' xmits and
/// the journaled budgets.
#[derive(Debug, Template, Serialize)]
#[template(path = "meta-reconstruction.html")]
pub struct Reconstruction {
    pub answered: Answered,
    pub queued: [u64; 3],
    pub unrecoverable: u64,
    pub in_flight: u64,
    pub started: u64,
    pub finished: u64,
    pub failed: u64,
    pub max_streams: u32,
    pub node_bytes_per_sec: u64,
    pub budgets: Vec<Budget>,
    /// rack -> datacenter, as the budgets know them.
    pub racks: BTreeMap<String, String>,
    /// Servers with work running or xmits in progress.
    pub busy: Vec<ServerWork>,
    pub idle_servers: u64,
    /// Rebuild reads by rack pair, as the blockservers' heartbeats report them.
    pub measured: Vec<MeasuredPair>,
}

impl Reconstruction {
    pub fn gather(node: &MetaNode, throttle: ThrottleSettings) -> Self {
        let (status, _) = node.blocks.scheduler.status();
        let nodes = node.blocks.registry.nodes();
        let mut busy = Vec::new();
        let mut idle = 0;
        for n in &nodes {
            let tasks = status.in_flight_by_node.get(&n.id).copied().unwrap_or(0);
            if tasks == 0 && n.storage.xmits_in_progress == 0 {
                idle += 1;
                continue;
            }
            busy.push(ServerWork {
                id: n.id.get(),
                rack: n.rack.clone(),
                live: n.live,
                xmits_in_progress: n.storage.xmits_in_progress,
                tasks_in_flight: tasks,
            });
        }
        let racks: BTreeMap<_, _> = nodes.iter().map(|n| (n.id, n.rack.clone())).collect();
        let measured = node
            .blocks
            .measured
            .by_rack_pair(
                |id| racks.get(&id).cloned(),
                raftfs_runtime::simulation::now_ms(),
            )
            .into_iter()
            .map(|p| MeasuredPair {
                budget_bytes_per_sec: throttle
                    .rack_pairs
                    .get(&(p.from.clone(), p.to.clone()))
                    .copied(),
                from: p.from,
                to: p.to,
                bytes_per_sec: p.bytes_per_sec,
                total_bytes: p.total_bytes,
            })
            .collect();
        let budgets = throttle
            .rack_pairs
            .iter()
            .map(|p| ("rack", p))
            .chain(throttle.datacenter_pairs.iter().map(|p| ("datacenter", p)))
            .map(|(kind, ((from, to), bps))| Budget {
                kind,
                from: from.clone(),
                to: to.clone(),
                bytes_per_sec: *bps,
            })
            .collect();
        Self {
            answered: answered(node),
            queued: status.queued,
            unrecoverable: status.unrecoverable,
            in_flight: status.in_flight,
            started: status.started,
            finished: status.finished,
            failed: status.failed,
            max_streams: node.blocks.tuning.max_streams,
            node_bytes_per_sec: throttle.node_bytes_per_sec,
            budgets,
            racks: throttle.racks,
            busy,
            idle_servers: idle,
            measured,
        }
    }

    pub fn node_rate(&self) -> String {
        show::rate(self.node_bytes_per_sec)
    }
}

/// `/ui/workers`: this member's background workers and their last rounds.
#[derive(Debug, Template, Serialize)]
#[template(path = "meta-workers.html")]
pub struct Workers {
    pub answered: Answered,
    pub workers: Vec<WorkerStatus>,
}

impl Workers {
    pub fn gather(node: &MetaNode) -> Self {
        Self {
            answered: answered(node),
            workers: node.workers.snapshot(),
        }
    }
}

/// Template helpers over a worker's status.
pub fn last_run(w: &WorkerStatus, now_ms: impl std::borrow::Borrow<u64>) -> String {
    show::ago(w.last_run_ms.unwrap_or(0), now_ms)
}

pub fn worker_state(w: &WorkerStatus) -> &'static str {
    match w.state {
        raftfs_runtime::WorkerState::Idle => "idle",
        raftfs_runtime::WorkerState::Running => "running",
        raftfs_runtime::WorkerState::Stopped => "stopped",
    }
}
