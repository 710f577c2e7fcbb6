//! `jepsen run`: a local cluster of real processes, client workers recording a history, a
//! nemesis injecting faults, then healing, recovery, final reads, the checkers, and
//! `store/<run-id>/{history.edn,results.json,logs/}`.

pub mod cluster;
pub mod nemesis;
pub mod recorder;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use raftfs_client::{AutoMsync, Client, ReadMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::checker::linearizable::{self, Limits};
use crate::checker::{Verdict, list_append, session};
use crate::history::{self, OpType};
use crate::model::namespace::NamespaceModel;
use crate::model::{self, CasRegister};
use cluster::Cluster;
use nemesis::{FaultKind, Nemesis, Targets};
use recorder::{Actor, Recorder};
use workload::{Mailbox, Op, WorkerState, WorkloadName};

/// Everything `jepsen run` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    #[arg(long, value_enum)]
    pub workload: WorkloadName,
    /// Faults, comma-separated (none: a run without faults).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub nemesis: Vec<FaultKind>,
    /// Whom `kill` and `pause` hit, comma-separated; one is chosen at random per fault.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "one,active,majority,all"
    )]
    pub targets: Vec<Targets>,
    /// Seconds of load (faults included).
    #[arg(long, default_value_t = 30)]
    pub time: u64,
    /// Operations per second, all workers together.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Client workers.
    #[arg(long, default_value_t = 5)]
    pub concurrency: u32,
    #[arg(long, default_value_t = 3)]
    pub voters: u32,
    #[arg(long, default_value_t = 2)]
    pub observers: u32,
    /// Registers (`register`); `rw-observer` has one key per worker.
    #[arg(long, default_value_t = 5)]
    pub keys: i64,
    /// Where reads go (`rw-observer` reads on observers by default).
    #[arg(long)]
    pub read_mode: Option<ReadMode>,
    /// With observer reads: msync `never`, `always` or when older than a period.
    #[arg(long, default_value = "never")]
    pub auto_msync: AutoMsync,
    /// Seconds between faults (and how long each lasts), randomized ±50 %.
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where runs are stored.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// The metactl binary (default: next to this one).
    #[arg(long)]
    pub metactl: Option<PathBuf>,
    /// The new binary the `upgrade` fault rolls onto (default: `metactl-next` next to this
    /// one, the next-format build: `cargo build -p raftfs-metactl --bin metactl-next
    /// --features next-format`).
    #[arg(long)]
    pub next_metactl: Option<PathBuf>,
    /// Give the linearizability search at most this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub check_time_limit: Duration,
    /// Federation (DESIGN §10): this many nameservices, each of --voters and --observers,
    /// behind --routers routers, which the clients call; faults hit the first nameservice.
    /// `rw-observer`'s keys are spread over every nameservice.
    #[arg(long, default_value_t = 0)]
    pub nameservices: u32,
    /// Routers of a federated run.
    #[arg(long, default_value_t = 2)]
    pub routers: u32,
    /// More `metactl local up` flags, e.g. debug switches (debug builds only).
    #[arg(long = "cluster-arg", allow_hyphen_values = true)]
    pub cluster_args: Vec<String>,
}

/// What a run concluded, as `results.json` stores it.
#[derive(Debug, Serialize)]
pub struct Results {
    pub run_id: String,
    pub workload: WorkloadName,
    pub nemesis: Vec<FaultKind>,
    pub seed: u64,
    pub time_s: u64,
    pub rate: f64,
    pub concurrency: u32,
    pub read_mode: String,
    /// Nameservices and routers of a federated run (0 and 0 otherwise).
    pub nameservices: u32,
    pub routers: u32,
    /// Completions by type (`ok`, `fail`, `info`) and by `:f`.
    pub ops: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    /// Faults and heals by kind.
    pub faults: std::collections::BTreeMap<String, u64>,
    pub checkers: std::collections::BTreeMap<String, Verdict>,
    pub valid: Verdict,
}

/// Runs one test; returns its results (also written under `store/<run-id>/`).
pub async fn run(opts: RunOptions) -> Result<(Results, PathBuf)> {
    let seed = opts.seed.unwrap_or_else(rand::random);
    let run_id = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        match opts.workload {
            WorkloadName::Register => "register",
            WorkloadName::RwObserver => "rw-observer",
            WorkloadName::Namespace => "namespace",
            WorkloadName::Append => "append",
        }
    );
    let store = opts.store.join(&run_id);
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let metactl = match &opts.metactl {
        Some(p) => p.clone(),
        None => cluster::default_metactl()?,
    };
    let federation = (opts.nameservices > 0).then_some(cluster::Federation {
        nameservices: opts.nameservices,
        routers: opts.routers,
    });
    let cluster = Cluster::up(
        metactl,
        &store.join("cluster"),
        opts.voters,
        opts.observers,
        federation,
        &opts.cluster_args,
    )?;
    let recorder = Arc::new(Recorder::new());
    let outcome = drive(&opts, &cluster, seed, &recorder).await;
    let logs = cluster.copy_logs(&store.join("logs"));
    let down = cluster.down();
    // Whatever happened, the history so far is kept.
    std::fs::write(store.join("history.edn"), recorder.to_edn())?;
    let (faults, final_error, invariants) = outcome?;
    logs?;
    down?;
    // The cluster's data is not needed once its logs are kept.
    let _ = std::fs::remove_dir_all(store.join("cluster"));

    let events = recorder.events();
    let ops = history::operations(&events)?;
    let mut counts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        Default::default();
    for op in &ops {
        let t = match op.outcome {
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info | OpType::Invoke => "info",
        };
        *counts
            .entry(t.to_owned())
            .or_default()
            .entry(op.f.clone())
            .or_default() += 1;
    }
    let mut checkers = std::collections::BTreeMap::new();
    match opts.workload {
        WorkloadName::Register => {
            let limits = Limits {
                deadline: Some(std::time::Instant::now() + opts.check_time_limit),
                ..Limits::default()
            };
            let keys = model::split_by_key(&ops).map_err(anyhow::Error::msg)?;
            checkers.insert(
                "linearizable".to_owned(),
                Verdict::all(
                    keys.into_iter()
                        .map(|(_, ops)| linearizable::check(&CasRegister::default(), &ops, limits)),
                ),
            );
        }
        WorkloadName::Append => {
            let r = list_append::check(&ops).map_err(anyhow::Error::msg)?;
            checkers.insert("list-append".into(), r.verdict);
        }
        WorkloadName::Namespace => {
            let limits = Limits {
                deadline: Some(std::time::Instant::now() + opts.check_time_limit),
                ..Limits::default()
            };
            let model = NamespaceModel {
                base: workload::NAMESPACE_BASE.to_owned(),
            };
            checkers.insert(
                "linearizable".to_owned(),
                linearizable::check(&model, &ops, limits),
            );
        }
        WorkloadName::RwObserver => {
            let r = session::check(&ops).map_err(anyhow::Error::msg)?;
            checkers.insert("read-your-own-writes".into(), r.read_your_own_writes);
            checkers.insert("monotonic-reads".into(), r.monotonic_reads);
            checkers.insert("third-party".into(), r.third_party);
            checkers.insert("no-future-reads".into(), r.no_future_reads);
            checkers.insert("durability".into(), r.durability);
        }
    }
    if let Some(v) = invariants {
        checkers.insert("namespace-invariants".into(), v);
    }
    if let Some(e) = final_error {
        // The cluster did not recover or the final reads failed: that is a finding too.
        checkers.insert(
            "recovery".into(),
            Verdict::Invalid {
                op: format!("{e:#}"),
            },
        );
    }
    let valid = Verdict::all(checkers.values().cloned());
    let results = Results {
        run_id,
        workload: opts.workload,
        nemesis: opts.nemesis.clone(),
        seed,
        time_s: opts.time,
        rate: opts.rate,
        concurrency: opts.concurrency,
        read_mode: read_mode(&opts).to_string(),
        nameservices: opts.nameservices,
        routers: if opts.nameservices > 0 {
            opts.routers
        } else {
            0
        },
        ops: counts,
        faults,
        checkers,
        valid,
    };
    std::fs::write(
        store.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    Ok((results, store))
}

fn read_mode(opts: &RunOptions) -> ReadMode {
    opts.read_mode.unwrap_or(match opts.workload {
        WorkloadName::Register | WorkloadName::Namespace | WorkloadName::Append => ReadMode::Active,
        WorkloadName::RwObserver => ReadMode::Observer,
    })
}

/// Faults injected, why the end of the run failed (if it did), and the namespace's
/// invariants (for that workload).
type Drive = (
    std::collections::BTreeMap<String, u64>,
    Option<anyhow::Error>,
    Option<Verdict>,
);

/// Load, faults, healing, recovery and final reads.
async fn drive(
    opts: &RunOptions,
    cluster: &Cluster,
    seed: u64,
    recorder: &Arc<Recorder>,
) -> Result<Drive> {
    let mode = read_mode(opts);
    let auto_msync = opts.auto_msync;
    // Set-up and final reads through the routers of a federated run; the nemesis and the
    // recovery check on the members faults hit.
    let admin = cluster.client(|c| {
        c.failover_deadline = Duration::from_secs(10);
    })?;
    let members = cluster.member_client(|c| {
        c.failover_deadline = Duration::from_secs(10);
    })?;
    workload::federate(&admin, &cluster.nameservices()?).await?;
    let keys = match opts.workload {
        WorkloadName::Register => opts.keys.max(1),
        WorkloadName::RwObserver => i64::from(opts.concurrency.max(1)),
        WorkloadName::Namespace => 0,
        // Enough keys for every append the run can make, a window at a time.
        WorkloadName::Append => {
            let appends = opts.time as f64 * opts.rate / 2.0;
            ((appends / f64::from(workload::APPENDS_PER_KEY)).ceil() as i64 + 4).min(1024)
        }
    };
    workload::setup(&admin, opts.workload, keys).await?;
    // Every process starts from what the set-up saw (its files, a federated run's mount
    // table): the set-up happened before any of them, as in Jepsen.
    let setup_token = admin.token();
    let new_client = {
        let cluster = cluster.clone();
        move || {
            let c = cluster.client(|c| {
                c.read_mode = mode;
                c.auto_msync = auto_msync;
                c.failover_deadline = Duration::from_secs(5);
                c.rpc_timeout = Duration::from_secs(1);
                c.observer_timeout = Duration::from_secs(1);
            })?;
            c.observe_token(&setup_token);
            anyhow::Ok(c)
        }
    };

    let mailbox = Arc::new(Mailbox::new(keys));
    let start = tokio::time::Instant::now();
    let until = start + Duration::from_secs(opts.time);
    let progress = indicatif::ProgressBar::new(opts.time);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} s {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let concurrency = i64::from(opts.concurrency.max(1));
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let recorder = recorder.clone();
        let mailbox = mailbox.clone();
        let new_client = new_client.clone();
        let workload = opts.workload;
        let mean_gap = Duration::from_secs_f64(concurrency as f64 / opts.rate.max(0.01));
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64 + 1));
        workers.push(tokio::spawn(async move {
            let mut process = w;
            let mut client = new_client()?;
            let mut state = WorkerState::new(w);
            while tokio::time::Instant::now() < until {
                if !state.read_back {
                    tokio::time::sleep(mean_gap.mul_f64(rng.random_range(0.0..2.0))).await;
                }
                let op = workload::generate(workload, keys, &mut rng, &mut state, &mailbox);
                recorder.record(
                    Actor::Process(process),
                    OpType::Invoke,
                    op.f(),
                    op.invoke_value(),
                );
                let (kind, value, error) = workload::apply(&client, workload, &op, &mailbox).await;
                state.completed(&op, kind, &value);
                recorder.record_error(Actor::Process(process), kind, op.f(), value, error);
                if kind == OpType::Info {
                    // As in Jepsen: a process whose operation may still take effect is gone;
                    // a new one (with a new client object) takes its place.
                    process += concurrency;
                    client = new_client()?;
                    if workload == WorkloadName::RwObserver && matches!(op, Op::Write { .. }) {
                        // The unknown write may still land after this worker's next one: go on
                        // with a fresh key, whose values then still only go up.
                        while tokio::time::Instant::now() < until {
                            match mailbox.fresh_rw_key(&client).await {
                                Ok(key) => {
                                    state.own_key = key;
                                    state.next_value = 1;
                                    state.read_back = false;
                                    break;
                                }
                                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                            }
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }

    let mut nemesis = Nemesis::new(
        cluster.clone(),
        members.clone(),
        recorder.clone(),
        StdRng::seed_from_u64(seed),
        opts.targets.clone(),
    );
    if opts.nemesis.contains(&FaultKind::Upgrade) {
        let next = match &opts.next_metactl {
            Some(p) => p.clone(),
            None => cluster::default_metactl()?.with_file_name("metactl-next"),
        };
        anyhow::ensure!(
            next.exists(),
            "{} not found: the upgrade fault needs the new binary (--next-metactl)",
            next.display()
        );
        nemesis = nemesis.with_next_metactl(next);
    }
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress.set_position(start.elapsed().as_secs());
            }
        })
    };
    let nemesis_result = nemesis
        .run(
            &opts.nemesis,
            Duration::from_secs(opts.interval.max(1)),
            until,
        )
        .await;
    for w in workers {
        w.await.context("worker panicked")??;
    }
    // Heal even if the schedule failed midway.
    let healed = nemesis.heal().await;
    ticker.abort();
    progress.finish_and_clear();
    nemesis_result?;
    healed?;

    // Recovery, then the final reads on the active (a fresh process and client).
    let keys = match opts.workload {
        WorkloadName::Append => mailbox.append_keys_used(),
        WorkloadName::RwObserver => mailbox.rw_keys(),
        _ => keys,
    };
    let final_error = final_reads(cluster, &members, recorder, opts, keys, concurrency)
        .await
        .err();
    let invariants = if opts.workload == WorkloadName::Namespace && final_error.is_none() {
        Some(namespace_invariants(&admin).await)
    } else {
        None
    };
    Ok((nemesis.counts, final_error, invariants))
}

async fn final_reads(
    cluster: &Cluster,
    admin: &Client,
    recorder: &Recorder,
    opts: &RunOptions,
    keys: i64,
    concurrency: i64,
) -> Result<()> {
    cluster.wait_healthy(admin, Duration::from_secs(60)).await?;
    let reader = cluster.client(|c| c.failover_deadline = Duration::from_secs(10))?;
    let process = concurrency * 1_000_000;
    let mailbox = Mailbox::default();
    let ops: Vec<Op> = match opts.workload {
        WorkloadName::Register => (0..keys).map(|key| Op::Read { key }).collect(),
        WorkloadName::RwObserver => (0..keys).map(|key| Op::FinalRead { key }).collect(),
        WorkloadName::Append => (0..keys).map(|key| Op::ReadList { key }).collect(),
        WorkloadName::Namespace => workload::namespace_dirs()
            .into_iter()
            .map(|dir| Op::List { dir })
            .collect(),
    };
    for op in ops {
        recorder.record(
            Actor::Process(process),
            OpType::Invoke,
            op.f(),
            op.invoke_value(),
        );
        let (kind, value, error) = workload::apply(&reader, opts.workload, &op, &mailbox).await;
        recorder.record_error(Actor::Process(process), kind, op.f(), value, error.clone());
        anyhow::ensure!(
            kind == OpType::Ok,
            "the final {} failed: {}",
            op.f(),
            error.unwrap_or_default()
        );
    }
    Ok(())
}

/// Walks the final tree under the workload's directory on the active: every inode is reached
/// once (no entry in two places after a rename), and the walk ends (no cycle).
async fn namespace_invariants(client: &Client) -> Verdict {
    let mut seen: std::collections::HashMap<u64, String> = Default::default();
    let mut stack = vec![(workload::NAMESPACE_BASE.to_owned(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if depth > 64 {
            return Verdict::Invalid {
                op: format!("{dir}: deeper than 64 levels (a cycle?)"),
            };
        }
        let entries = match client.list(&dir).await {
            Ok(e) => e,
            Err(e) => {
                return Verdict::Unknown {
                    reason: format!("listing {dir}: {e}"),
                };
            }
        };
        for e in entries {
            let path = format!("{dir}/{}", e.name);
            if let Some(other) = seen.insert(e.id, path.clone()) {
                return Verdict::Invalid {
                    op: format!("inode {} is both {other} and {path}", e.id),
                };
            }
            if e.kind == raftfs_client::FileKind::Directory {
                stack.push((path, depth + 1));
            }
        }
    }
    Verdict::Valid
}

/// The summary table printed after a run.
pub fn summary(results: &Results, store: &std::path::Path) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "run {}  workload {:?}  nemesis {:?}  seed {}  read-mode {}\n\n",
        results.run_id, results.workload, results.nemesis, results.seed, results.read_mode
    ));
    out.push_str(&format!(
        "{:<14}{:>8}{:>8}{:>8}\n",
        "op", "ok", "fail", "info"
    ));
    let mut fs: std::collections::BTreeSet<&String> = Default::default();
    for by_f in results.ops.values() {
        fs.extend(by_f.keys());
    }
    let get = |t: &str, f: &str| {
        results
            .ops
            .get(t)
            .and_then(|m| m.get(f))
            .copied()
            .unwrap_or(0)
    };
    for f in fs {
        out.push_str(&format!(
            "{:<14}{:>8}{:>8}{:>8}\n",
            f,
            get("ok", f),
            get("fail", f),
            get("info", f)
        ));
    }
    out.push_str("\nfaults:");
    if results.faults.is_empty() {
        out.push_str(" none");
    }
    for (f, n) in &results.faults {
        out.push_str(&format!(" {f}×{n}"));
    }
    out.push_str("\n\n");
    for (name, v) in &results.checkers {
        let line = match v {
            Verdict::Valid => "valid".to_owned(),
            Verdict::Invalid { op } => format!("INVALID: {op}"),
            Verdict::Unknown { reason } => format!("unknown: {reason}"),
        };
        out.push_str(&format!("{name:<22}{line}\n"));
    }
    let overall = match &results.valid {
        Verdict::Valid => "valid",
        Verdict::Invalid { .. } => "INVALID",
        Verdict::Unknown { .. } => "unknown",
    };
    out.push_str(&format!(
        "\nverdict: {overall}   (history, results and logs in {})\n",
        store.display()
    ));
    out
}
