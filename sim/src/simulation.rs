//! Deterministic simulation (issue 21, DESIGN §14): real members on simulated time and a
//! simulated network, under faults drawn from one seed, with `lin-kv` clients whose history
//! the linearizability checker judges. The same seed gives the same run: the same messages in
//! the same order, the same faults at the same instants, the same history byte for byte.
//!
//! Built on turmoil: each member is a simulated host (`n1`…`nN`), a Maelstrom node
//! ([`crate::maelstrom::Node`]) over turmoil's UDP, so its Raft messages are delayed,
//! reordered and lost by turmoil's network, and cut by its partitions. A crash is turmoil's:
//! the host's runtime is dropped with every task on it, as `kill -9` would, and a restart
//! opens the member's stores again from its directory. The clients (`c1`…) are simulated
//! hosts too; the nemesis acts between the simulation's steps.
//!
//! Everything a member would take from the machine comes from the simulation instead
//! ([`raftfs_runtime::simulation`]): RocksDB's calls run inline, the wall clock is turmoil's,
//! random numbers are drawn from the seed. Each member's election timeout is a constant drawn
//! from the seed at each start (openraft draws from its own thread generator between `min` and
//! `max`; here `max = min + 1`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sha2::Digest;
use turmoil::net::UdpSocket;

use raftfs_runtime::simulation::{IoFault, IoPoint};

use crate::lin_kv::{self, Outcome};
use crate::maelstrom::{Node, NodeOptions, Wire};

/// The port every simulated host listens on.
const PORT: u16 = 9000;

/// The largest datagram a host reads: larger ones would arrive cut and be ignored as bad
/// input. Raft messages stay far below (`max_append_bytes` is set below it).
const MAX_DATAGRAM: usize = 8 << 20;

/// How long a client waits for an answer before it records the operation as indeterminate.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

/// A debug-only bug switch the simulation turns on, to show that it finds the anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Every node answers reads from its own state (stale reads under partitions).
    LocalReads,
    /// Log entries are acknowledged before they are written, and applied state skips the
    /// WAL (`debug-ack-before-fsync`): a crash of every member loses acknowledged writes.
    AckBeforeFsync,
    /// The active answers reads without its quorum lease (`debug-reads-without-lease`): an
    /// active cut off from the others keeps answering from its old state after its
    /// successor took writes.
    ReadsWithoutLease,
    /// An observer answers reads without waiting for the state ID its reader brought from
    /// the active's `msync` (`debug-skip-state-id-wait`, the real-process campaigns'
    /// switch); the plan gets an observer if it has none.
    StaleObserverReads,
}

impl Bug {
    pub const ALL: [Bug; 4] = [
        Bug::LocalReads,
        Bug::AckBeforeFsync,
        Bug::ReadsWithoutLease,
        Bug::StaleObserverReads,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::LocalReads => "local-reads",
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::ReadsWithoutLease => "reads-without-lease",
            Bug::StaleObserverReads => "stale-observer-reads",
        }
    }

    pub fn parse(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// One simulation's shape.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    /// Voting members.
    pub nodes: usize,
    /// Observers (non-voting members that serve reads after the reader's `msync`).
    pub observers: usize,
    pub clients: usize,
    /// Keys the clients use (each an independent register).
    pub keys: i64,
    /// Simulated time during which clients start operations.
    pub duration: Duration,
    /// Which faults the nemesis may inject.
    pub faults: Faults,
    /// Faults at fixed times (start, end, fault) instead of drawn ones: a scripted scenario.
    pub script: Vec<(Duration, Duration, Fault)>,
    pub bug: Option<Bug>,
}

impl Plan {
    /// The plan CI and `sim-run` use for `seed`.
    pub fn standard(seed: u64) -> Plan {
        Plan {
            seed,
            nodes: 3,
            observers: 0,
            clients: 6,
            keys: 2,
            duration: Duration::from_secs(20),
            faults: Faults::all(),
            script: Vec::new(),
            bug: None,
        }
    }

    /// `sim/tests/maelstrom.rs`'s lin-kv run on real processes, simulated: 3 members, 5
    /// clients on 3 keys, each member in turn cut off from the others for 2 s after 1 s of
    /// quiet, 10 s in all; no other fault.
    pub fn partitions_in_turn(seed: u64) -> Plan {
        let script = (0..3u64)
            .map(|i| {
                let start = Duration::from_secs(1 + 3 * i);
                let node = format!("n{}", i + 1);
                (start, start + Duration::from_secs(2), Fault::Isolate(node))
            })
            .collect();
        Plan {
            seed,
            nodes: 3,
            observers: 0,
            clients: 5,
            keys: 3,
            duration: Duration::from_secs(10),
            faults: Faults::none(),
            script,
            bug: None,
        }
    }
}

/// The nemesis's repertoire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// A node cut off from the other nodes (clients still reach it).
    pub partitions: bool,
    /// A node crashed and restarted.
    pub crashes: bool,
    /// Every node crashed at once, then restarted (a power cut).
    pub power_cuts: bool,
    /// Messages between nodes lost at random.
    pub loss: bool,
    /// Storage writes that fail (before or after writing) at points drawn from the seed;
    /// the member stops and is restarted, as systemd would.
    pub io_errors: bool,
}

impl Faults {
    pub fn all() -> Faults {
        Faults {
            partitions: true,
            crashes: true,
            power_cuts: true,
            loss: true,
            io_errors: true,
        }
    }

    pub fn none() -> Faults {
        Faults {
            partitions: false,
            crashes: false,
            power_cuts: false,
            loss: false,
            io_errors: false,
        }
    }
}

/// What a simulation gave.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    /// The clients' history (EDN, one event per line, simulated times).
    pub history: String,
    /// SHA-256 of [`Report::history`], in hex.
    pub digest: String,
    pub search: raftfs_jepsen::checker::linearizable::Search,
    pub ok: usize,
    pub info: usize,
    /// What the nemesis did, and when (simulated).
    pub faults: Vec<String>,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// Panics in the members' tasks (openraft's assertions among them): each is an anomaly,
    /// though tokio kept the simulation going.
    pub panics: Vec<String>,
}

impl Report {
    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.search.verdict.is_valid() && self.panics.is_empty()
    }
}

/// Why a simulation could not run to its end (a member that panicked is one: reported, the
/// seed replays it).
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    #[error("simulation (seed {seed}): {message}")]
    Run { seed: u64, message: String },
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("checking the history: {0}")]
    Check(String),
    #[error("{0} is a debug-build switch")]
    DebugOnly(&'static str),
    /// A scripted plan that cannot run as written.
    #[error("plan: {0}")]
    Plan(String),
}

/// A script's faults must come in time order, one at a time, on members the plan has; and
/// a bug that needs crashes to show must have one.
fn check_script(plan: &Plan) -> Result<(), SimulationError> {
    let members = plan.nodes + plan.observers;
    let known = |n: &str| {
        n.strip_prefix('n')
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| (1..=members).contains(&i))
    };
    let mut end = Duration::ZERO;
    for (start, stop, fault) in &plan.script {
        if start < &end || stop < start {
            return Err(SimulationError::Plan(format!(
                "{fault:?} at {start:?}..{stop:?} is out of order or overlaps the fault before"
            )));
        }
        end = *stop;
        let node = match fault {
            Fault::Isolate(n) | Fault::Crash(n) | Fault::IsolateActive(Some(n)) => Some(n),
            _ => None,
        };
        if let Some(n) = node.filter(|n| !known(n)) {
            return Err(SimulationError::Plan(format!("no member {n}")));
        }
    }
    let crashes = plan
        .script
        .iter()
        .any(|(_, _, f)| matches!(f, Fault::Crash(_) | Fault::PowerCut));
    if plan.bug == Some(Bug::AckBeforeFsync) && !plan.script.is_empty() && !crashes {
        return Err(SimulationError::Plan(
            "ack-before-fsync shows only on a crash, and the script has none".into(),
        ));
    }
    Ok(())
}

/// The generator every simulated draw comes from, set for the run in progress.
static RANDOM: Mutex<Option<StdRng>> = Mutex::new(None);

/// One storage write in this many fails, when the plan has I/O errors (0: none).
static IO_ERROR_ONE_IN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Starts of one member that may fail in a row (each on an injected storage error, at most
/// one in [`IO_ERROR_ONE_IN_PLAN`] writes) before the run fails.
const START_ATTEMPTS: u32 = 5;

/// How often a storage write fails: rare enough that the cluster keeps a quorum most of the
/// time (a run has some thousands of writes).
const IO_ERROR_ONE_IN_PLAN: u64 = 1500;

fn io_fault(_point: IoPoint) -> Option<IoFault> {
    let one_in = IO_ERROR_ONE_IN.load(std::sync::atomic::Ordering::Relaxed);
    if one_in == 0 {
        return None;
    }
    let draw = random();
    if !draw.is_multiple_of(one_in) {
        return None;
    }
    Some(if (draw / one_in).is_multiple_of(2) {
        IoFault::Before
    } else {
        IoFault::After
    })
}

/// One simulation at a time: the hooks are process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The thread of the run in progress (every host runs on it) and the panics there (`None`:
/// no run in progress).
type Caught = Option<(std::thread::ThreadId, Vec<String>)>;
static PANICS: Mutex<Caught> = Mutex::new(None);

fn panics() -> std::sync::MutexGuard<'static, Caught> {
    match PANICS.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Records the panics on the thread of a run in progress (one line each: tokio catches
/// them and the run goes on), and leaves every other panic to the hook that was there before.
fn catch_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut g = panics();
            match g.as_mut() {
                Some((thread, list)) if *thread == std::thread::current().id() => {
                    let line = format!(
                        "{} at {}",
                        panic_message(info.payload()),
                        info.location().map_or(String::new(), |l| l.to_string())
                    );
                    eprintln!("simulation: a panic during the run: {line}");
                    list.push(line);
                }
                _ => {
                    drop(g);
                    before(info);
                }
            }
        }));
    });
}

fn panic_message(payload: &dyn std::any::Any) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_owned()
    }
}

fn random() -> u64 {
    let mut g = match RANDOM.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    match g.as_mut() {
        Some(rng) => rng.random(),
        None => rand::random(),
    }
}

/// Runs `plan`, checks its history, and reports.
pub fn run(plan: &Plan) -> Result<Report, SimulationError> {
    if plan.bug.is_some() && !cfg!(debug_assertions) {
        return Err(SimulationError::DebugOnly("a bug switch"));
    }
    check_script(plan)?;
    let _one = match ONE_AT_A_TIME.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    raftfs_runtime::simulation::enter(raftfs_runtime::simulation::Simulation {
        since_epoch: turmoil::since_epoch,
        random,
        io_fault,
    });
    IO_ERROR_ONE_IN.store(
        if plan.faults.io_errors {
            IO_ERROR_ONE_IN_PLAN
        } else {
            0
        },
        std::sync::atomic::Ordering::Relaxed,
    );
    set_random(Some(StdRng::seed_from_u64(plan.seed)));
    catch_panics();
    *panics() = Some((std::thread::current().id(), Vec::new()));
    // The run's state is reset however the run ends, unwinding included.
    let _reset = ResetAfterRun;
    // A member's panic stops its host's runtime (turmoil does so under tokio_unstable, which
    // reproducibility needs), and the run unwinds from there: it ended on that panic.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| simulate(plan)))
        .unwrap_or_else(|payload| {
            Err(SimulationError::Run {
                seed: plan.seed,
                message: format!("a member panicked: {}", panic_message(payload.as_ref())),
            })
        });
    let caught = panics().take().map(|(_, list)| list).unwrap_or_default();
    result.map(|report| Report {
        panics: caught,
        ..report
    })
}

/// Puts the process-wide state of a run back when the run ends.
struct ResetAfterRun;

impl Drop for ResetAfterRun {
    fn drop(&mut self) {
        set_random(None);
        IO_ERROR_ONE_IN.store(0, std::sync::atomic::Ordering::Relaxed);
        *panics() = None;
    }
}

fn set_random(rng: Option<StdRng>) {
    match RANDOM.lock() {
        Ok(mut g) => *g = rng,
        Err(p) => *p.into_inner() = rng,
    }
}

fn simulate(plan: &Plan) -> Result<Report, SimulationError> {
    let data = scratch_dir()?;
    let observers = if plan.bug == Some(Bug::StaleObserverReads) {
        plan.observers.max(1)
    } else {
        plan.observers
    };
    let nodes: Vec<String> = (1..=plan.nodes + observers)
        .map(|i| format!("n{i}"))
        .collect();
    let observer_names: Arc<Vec<String>> = Arc::new(nodes[plan.nodes..].to_vec());
    let clients: Vec<String> = (1..=plan.clients).map(|i| format!("c{i}")).collect();
    let hosts: Arc<BTreeSet<String>> = Arc::new(nodes.iter().chain(&clients).cloned().collect());
    let live: Live = Rc::default();
    let mut nemesis = Nemesis::new(plan, &nodes, live.clone());

    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(plan.seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .simulation_duration(plan.duration + Duration::from_secs(60))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(15))
        .enable_random_order();
    let mut sim = builder.build();

    for name in &nodes {
        let (me, names, hosts) = (name.clone(), Arc::new(nodes.clone()), hosts.clone());
        let observer_names = observer_names.clone();
        let root = data.path().to_owned();
        let options = node_options(plan.bug);
        let live = live.clone();
        sim.host(name.as_str(), move || {
            serve_node(
                me.clone(),
                Cluster {
                    names: names.clone(),
                    observers: observer_names.clone(),
                },
                hosts.clone(),
                root.clone(),
                options.clone(),
                live.clone(),
            )
        });
    }
    let history = Rc::new(RefCell::new(Vec::<String>::new()));
    let counts = Rc::new(RefCell::new((0usize, 0usize)));
    for (i, name) in clients.iter().enumerate() {
        let work = ClientWork {
            me: name.clone(),
            nodes: nodes.clone(),
            client: lin_kv::Client::new(i, plan.clients, plan.keys, plan.seed),
            duration: plan.duration,
            history: history.clone(),
            counts: counts.clone(),
        };
        sim.client(name.as_str(), work.run());
    }

    loop {
        let done = sim.step().map_err(|e| SimulationError::Run {
            seed: plan.seed,
            message: e.to_string(),
        })?;
        if done {
            break;
        }
        nemesis
            .act(&mut sim)
            .map_err(|message| SimulationError::Run {
                seed: plan.seed,
                message,
            })?;
    }
    let simulated = sim.elapsed();
    drop(sim);

    let history = history.borrow().join("\n");
    let search = raftfs_jepsen::check_text_from(
        &history,
        raftfs_jepsen::ModelName::Kv,
        Duration::from_secs(120),
        &edn_format::Value::Nil,
    )
    .map_err(|e| SimulationError::Check(e.to_string()))?;
    let digest = sha2::Sha256::digest(history.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (ok, info) = *counts.borrow();
    Ok(Report {
        seed: plan.seed,
        history,
        digest,
        search,
        ok,
        info,
        faults: nemesis.log,
        simulated,
        panics: Vec::new(),
    })
}

/// Members' data: in memory where the machine has `/dev/shm` (a simulated crash is a process
/// crash; durability against power loss is the storage layer's, not the disk's, here).
fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let mut b = tempfile::Builder::new();
    b.prefix("raftfs-sim-");
    if shm.is_dir() {
        b.tempdir_in(shm)
    } else {
        b.tempdir()
    }
}

/// The member's configuration in a simulation, and the bug switch if any.
fn node_options(bug: Option<Bug>) -> NodeOptions {
    NodeOptions {
        local_reads: bug == Some(Bug::LocalReads),
        tune: Some(Arc::new(move |config: &mut raftfs_metaserver::Config| {
            let r = &mut config.raft;
            r.heartbeat_ms = 50;
            // A constant per start, drawn from the seed: openraft's own draw is not seeded.
            // Within 40 ms of each other: a member's read lease (its own timeout less a
            // heartbeat) assumes no other member times out sooner, as when they share one
            // configuration.
            r.election_timeout_min_ms = 300 + raftfs_runtime::simulation::random_u64() % 40;
            r.election_timeout_max_ms = r.election_timeout_min_ms + 1;
            r.max_append_bytes = 1 << 20;
            // Snapshots, purges and their transfer to members that fell behind, within a run.
            r.snapshot_every_entries = 200;
            r.keep_entries_behind_snapshot = 10;
            config.debug_ack_before_fsync = bug == Some(Bug::AckBeforeFsync);
            config.debug_reads_without_lease = bug == Some(Bug::ReadsWithoutLease);
            config.debug_skip_state_id_wait = bug == Some(Bug::StaleObserverReads);
        })),
    }
}

/// The members a node is told of at `init`.
struct Cluster {
    names: Arc<Vec<String>>,
    observers: Arc<Vec<String>>,
}

/// A member's host: a Maelstrom node whose messages travel as turmoil datagrams. It starts
/// itself (the `init` Maelstrom would send), and again after each restart, from its directory.
async fn serve_node(
    me: String,
    cluster: Cluster,
    hosts: Arc<BTreeSet<String>>,
    root: PathBuf,
    options: NodeOptions,
    live: Live,
) -> turmoil::Result {
    let socket = Rc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).await?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let node = Node::new(Wire::new(tx), root, options);
    live.borrow_mut().insert(me.clone(), node.clone());
    let out = socket.clone();
    tokio::task::spawn_local(async move {
        while let Some(line) = rx.recv().await {
            let dest = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|m| m["dest"].as_str().map(str::to_owned));
            // Only to hosts of the simulation (the answer to the `init` below goes nowhere).
            if let Some(dest) = dest.filter(|d| hosts.contains(d)) {
                let _ = out.send_to(line.as_bytes(), (dest.as_str(), PORT)).await;
            }
        }
    });
    let init = json!({"src": "sim", "dest": me, "body": {
        "type": "init", "msg_id": 1, "node_id": me, "node_ids": *cluster.names,
        "observer_ids": *cluster.observers}});
    node.handle_line(&init.to_string());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, _) = socket.recv_from(&mut buf).await?;
        match std::str::from_utf8(&buf[..n]) {
            Ok(line) => node.handle_line(line),
            Err(_) => tracing::warn!("ignored a datagram that is not text"),
        }
    }
}

/// One client host: operations until the run's duration is over, each recorded.
struct ClientWork {
    me: String,
    nodes: Vec<String>,
    client: lin_kv::Client,
    duration: Duration,
    history: Rc<RefCell<Vec<String>>>,
    counts: Rc<RefCell<(usize, usize)>>,
}

impl ClientWork {
    async fn run(mut self) -> turmoil::Result {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, PORT)).await?;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let start = tokio::time::Instant::now();
        let mut msg_id = 0u64;
        while start.elapsed() < self.duration {
            let op = self.client.next_operation();
            let node = self.nodes[self.client.draw(self.nodes.len() as u64) as usize].clone();
            msg_id += 1;
            let mut body = op.body.clone();
            body["msg_id"] = json!(msg_id);
            let line = json!({"src": self.me, "dest": node, "body": body}).to_string();
            self.history
                .borrow_mut()
                .push(self.client.invoke(&op, Some(now_ns())));
            socket
                .send_to(line.as_bytes(), (node.as_str(), PORT))
                .await?;
            let reply =
                tokio::time::timeout(CLIENT_TIMEOUT, reply_to(&socket, &mut buf, &node, msg_id))
                    .await
                    .ok()
                    .flatten();
            let (event, outcome) = self.client.complete(&op, reply.as_ref(), Some(now_ns()));
            self.history.borrow_mut().push(event);
            match outcome {
                Outcome::Ok => self.counts.borrow_mut().0 += 1,
                Outcome::Info => self.counts.borrow_mut().1 += 1,
                Outcome::Fail => {}
            }
            let pause = self.client.draw(30);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Ok(())
    }
}

/// Waits for `node`'s answer to `msg_id` (late answers to earlier calls are skipped).
async fn reply_to(socket: &UdpSocket, buf: &mut [u8], node: &str, msg_id: u64) -> Option<Value> {
    loop {
        let (n, _) = socket.recv_from(buf).await.ok()?;
        let Ok(m) = serde_json::from_slice::<Value>(&buf[..n]) else {
            continue;
        };
        if m["src"] == json!(node) && m["body"]["in_reply_to"] == json!(msg_id) {
            return Some(m["body"].clone());
        }
    }
}

/// The simulated time in nanoseconds (the history's `:time`).
fn now_ns() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The nodes running now, by name (a crashed one leaves; its restart enters again).
type Live = Rc<RefCell<std::collections::BTreeMap<String, Node>>>;

/// What the nemesis does next, and undoes after. Members are named `n1`…`nN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The member cut off from the other members (clients still reach it).
    Isolate(String),
    /// The node that believes it is the active, cut off (any node when none does); the
    /// node is chosen when the fault starts.
    IsolateActive(Option<String>),
    /// The member crashed (`kill -9`), restarted at the fault's end.
    Crash(String),
    /// Every member crashed, restarted at the fault's end.
    PowerCut,
    /// 20% of the messages between members lost.
    Loss,
}

/// The faults of one run, drawn from its seed before it starts: one at a time, each held
/// for a while, with quiet time between.
struct Nemesis {
    nodes: Vec<String>,
    live: Live,
    /// (start, end, fault), in time order.
    schedule: Vec<(Duration, Duration, Fault)>,
    active: Option<(Duration, Fault)>,
    /// Members whose Raft stopped on a storage error, and when each starts again.
    restarts: Vec<(Duration, String)>,
    /// Starts that failed in a row, by member.
    failed_starts: std::collections::BTreeMap<String, u32>,
    log: Vec<String>,
}

impl Nemesis {
    fn new(plan: &Plan, nodes: &[String], live: Live) -> Nemesis {
        let mut rng = StdRng::seed_from_u64(plan.seed ^ 0x006e_656d_6573_6973);
        let f = plan.faults;
        let mut kinds: Vec<u8> = Vec::new();
        for (on, kind) in [
            (f.partitions, 0),
            (f.crashes, 1),
            (f.power_cuts, 2),
            (f.loss, 3),
        ] {
            if on {
                kinds.push(kind);
            }
        }
        // The bugs that lose what is not on disk need crashes to show.
        if matches!(plan.bug, Some(Bug::AckBeforeFsync)) && !kinds.contains(&2) {
            kinds.push(2);
        }
        let mut schedule = plan.script.clone();
        let mut t = Duration::from_millis(rng.random_range(1_000..3_000));
        while plan.script.is_empty() && !kinds.is_empty() && t < plan.duration {
            let held = Duration::from_millis(rng.random_range(500..3_000));
            let node = nodes[rng.random_range(0..nodes.len())].clone();
            let fault = match kinds[rng.random_range(0..kinds.len())] {
                0 if rng.random_bool(0.5) => Fault::Isolate(node),
                0 => Fault::IsolateActive(None),
                1 => Fault::Crash(node),
                2 => Fault::PowerCut,
                _ => Fault::Loss,
            };
            schedule.push((t, t + held, fault));
            t += held + Duration::from_millis(rng.random_range(500..3_000));
        }
        schedule.reverse();
        Nemesis {
            nodes: nodes.to_vec(),
            live,
            schedule,
            active: None,
            restarts: Vec::new(),
            failed_starts: std::collections::BTreeMap::new(),
            log: Vec::new(),
        }
    }

    /// Starts or ends faults that are due at the simulation's time; an error when a member
    /// cannot start again.
    fn act(&mut self, sim: &mut turmoil::Sim<'_>) -> Result<(), String> {
        let now = sim.elapsed();
        self.restart_failed(sim, now)?;
        if let Some((end, fault)) = &self.active
            && now >= *end
        {
            let fault = fault.clone();
            self.end(sim, &fault);
            self.log.push(format!("{:?} end {fault:?}", now));
            self.active = None;
        }
        if self.active.is_none()
            && let Some((start, _, _)) = self.schedule.last()
            && now >= *start
            && let Some((_, end, fault)) = self.schedule.pop()
        {
            let fault = self.aim(fault);
            self.start(sim, &fault);
            self.log.push(format!("{:?} start {fault:?}", now));
            self.active = Some((end, fault));
        }
        Ok(())
    }

    /// Members whose Raft stopped (a storage error), or that could not start (one met at
    /// its start), are stopped, and started again a second later. A member that cannot start
    /// [`START_ATTEMPTS`] times in a row is an error of the run: its stores are broken.
    fn restart_failed(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration) -> Result<(), String> {
        let failed: Vec<(String, Option<String>)> = self
            .live
            .borrow()
            .iter()
            .filter_map(|(name, node)| match node.start_error() {
                Some(e) => Some((name.clone(), Some(e))),
                None => node.failed().then(|| (name.clone(), None)),
            })
            .collect();
        for (name, start_error) in failed {
            let attempts = self.failed_starts.entry(name.clone()).or_insert(0);
            match &start_error {
                Some(e) => {
                    *attempts += 1;
                    if *attempts >= START_ATTEMPTS {
                        return Err(format!("{name} could not start {attempts} times: {e}"));
                    }
                    self.log
                        .push(format!("{now:?} {name} could not start: {e}"));
                }
                None => {
                    *attempts = 0;
                    self.log
                        .push(format!("{now:?} {name} failed on a storage error"));
                }
            }
            self.live.borrow_mut().remove(&name);
            sim.crash(name.as_str());
            self.restarts.push((now + Duration::from_secs(1), name));
        }
        let (due, later): (Vec<_>, Vec<_>) =
            self.restarts.drain(..).partition(|(at, _)| *at <= now);
        self.restarts = later;
        for (_, name) in due {
            sim.bounce(name.as_str());
            self.log.push(format!("{now:?} {name} restarted"));
        }
        Ok(())
    }

    /// A fault aimed at the active, given the node that believes it is.
    fn aim(&self, fault: Fault) -> Fault {
        match fault {
            Fault::IsolateActive(None) => {
                let live = self.live.borrow();
                let active = live
                    .iter()
                    .find(|(_, node)| node.believes_active())
                    .map(|(name, _)| name.clone());
                let target = active.or_else(|| self.nodes.first().cloned());
                Fault::IsolateActive(target)
            }
            other => other,
        }
    }

    fn others<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.nodes.iter().filter(move |n| *n != node)
    }

    fn start(&mut self, sim: &mut turmoil::Sim<'_>, fault: &Fault) {
        match fault {
            Fault::Isolate(node) | Fault::IsolateActive(Some(node)) => {
                for other in self.others(node) {
                    sim.partition(node.as_str(), other.as_str());
                }
            }
            Fault::IsolateActive(None) => {}
            Fault::Crash(node) => {
                // The fault's end restarts it, not a restart pending from a failure.
                self.restarts.retain(|(_, n)| n != node);
                self.live.borrow_mut().remove(node);
                sim.crash(node.as_str());
            }
            Fault::PowerCut => {
                self.restarts.clear();
                self.live.borrow_mut().clear();
                for node in &self.nodes {
                    sim.crash(node.as_str());
                }
            }
            Fault::Loss => {
                for a in &self.nodes {
                    for b in self.others(a) {
                        sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.2);
                    }
                }
            }
        }
    }

    fn end(&self, sim: &mut turmoil::Sim<'_>, fault: &Fault) {
        match fault {
            Fault::Isolate(node) | Fault::IsolateActive(Some(node)) => {
                for other in self.others(node) {
                    sim.repair(node.as_str(), other.as_str());
                }
            }
            Fault::IsolateActive(None) => {}
            Fault::Crash(node) => sim.bounce(node.as_str()),
            Fault::PowerCut => {
                for node in &self.nodes {
                    sim.bounce(node.as_str());
                }
            }
            Fault::Loss => {
                for a in &self.nodes {
                    for b in self.others(a) {
                        sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                    }
                }
            }
        }
    }
}
