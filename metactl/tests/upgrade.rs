//! A rolling upgrade through real processes (DESIGN §11): a 3-voter, 1-observer cluster with
//! 9 blockservers, under metadata and data load, is rolled onto the "new version"
//! (`metactl-next`, the `next-format` build), rolled back before finalize, rolled onto it
//! again and finalized: no client call fails, every acknowledged create is there, every byte
//! reads back, and once finalized the old binary can no longer follow.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use common::LocalCluster;

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// One `loadgen --json ARGS` run: its report, or why it did not produce one.
fn loadgen(args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new(common::loadgen_bin())
        .arg("--json")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// What the loads saw while they ran.
#[derive(Debug, Default)]
struct Seen {
    runs: u64,
    ops: u64,
    errors: u64,
    failures: Vec<String>,
}

/// Client loads run over and over until stopped: creates at a steady rate under `root`,
/// RS-3-2 files written, and REPLICATED-3 files read and checked byte for byte.
struct Loads {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Seen>>,
}

impl Loads {
    fn start(dir: &str, root: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let kinds: [Vec<String>; 3] = [
            ["--rate", "20", "meta", "--op", "create", "--clients", "4"]
                .into_iter()
                .chain(["--ops", "40", "--roots", root])
                .map(str::to_owned)
                .collect(),
            ["data", "--op", "write", "--policy", "RS-3-2-1024k"]
                .into_iter()
                .chain(["--size", "12MiB", "--clients", "2"])
                .map(str::to_owned)
                .collect(),
            ["data", "--op", "read", "--policy", "REPLICATED-3"]
                .into_iter()
                .chain(["--size", "24MiB", "--clients", "2"])
                .map(str::to_owned)
                .collect(),
        ];
        let threads = kinds
            .into_iter()
            .map(|mut args| {
                args.extend(["--cluster".to_owned(), dir.to_owned()]);
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut seen = Seen::default();
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    while !stop.load(Ordering::Relaxed) {
                        seen.runs += 1;
                        match loadgen(&args) {
                            Ok(r) => {
                                seen.ops += r["ops"].as_u64().unwrap_or(0);
                                let errors = r["errors"].as_u64().unwrap_or(u64::MAX);
                                seen.errors += errors;
                                if errors > 0 {
                                    seen.failures.push(r.to_string());
                                }
                            }
                            Err(e) => {
                                seen.errors += 1;
                                seen.failures.push(e);
                            }
                        }
                    }
                    seen
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops after the runs under way; (creates acknowledged, what every load saw).
    fn stop(self) -> (u64, Vec<Seen>) {
        self.stop.store(true, Ordering::Relaxed);
        let seen: Vec<Seen> = self
            .threads
            .into_iter()
            .map(|t| t.join().expect("load thread"))
            .collect();
        for s in &seen {
            assert_eq!(s.errors, 0, "a client call failed: {s:?}");
            assert!(s.runs > 0);
        }
        (seen[0].ops, seen)
    }
}

/// `upgrade status --json`.
fn status(cluster: &LocalCluster) -> serde_json::Value {
    serde_json::from_str(&ok(cluster.ctl(&["upgrade", "status", "--json"]))).expect("json")
}

/// Every member runs a binary whose name ends with `suffix` and writes up to `newest`.
fn assert_members(s: &serde_json::Value, suffix: &str, newest: u64) {
    let members = s["members"].as_array().expect("members");
    assert_eq!(members.len(), 4, "{s}");
    for m in members {
        let binary = m["binary"].as_str().expect("every member answers");
        assert!(binary.ends_with(suffix), "{m}");
        assert_eq!(m["newest_level"], newest, "{m}");
    }
}

fn rolling_restart(cluster: &LocalCluster, exe: Option<&Path>) {
    let dir = cluster.dir_arg();
    let mut args = vec!["local", "rolling-restart", "--dir", &dir];
    let exe = exe.map(|p| p.display().to_string());
    if let Some(exe) = &exe {
        args.extend(["--bin", exe]);
    }
    ok(cluster.ctl(&args));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_under_load_rolls_back_then_finalizes_without_a_failed_call() {
    let next: PathBuf = common::metactl_next_bin();
    let cluster = LocalCluster::up(
        3,
        &["--observers", "1", "--blockservers", "9", "--racks", "3"],
    );
    let dir = cluster.dir_arg();
    let client = cluster.client();
    // Read back, byte for byte, all along.
    loadgen(&[
        "data",
        "--op",
        "write",
        "--policy",
        "REPLICATED-3",
        "--size",
        "24MiB",
        "--clients",
        "2",
        "--cluster",
        &dir,
    ])
    .expect("prefill");
    let version = env!("CARGO_PKG_VERSION");
    assert_members(&status(&cluster), version, 1);

    // 1. Onto the new binary, and back before finalize.
    ok(cluster.ctl(&["upgrade", "prepare"]));
    let loads = Loads::start(&dir, "/load-a");
    rolling_restart(&cluster, Some(&next));
    let s = status(&cluster);
    assert_members(&s, "+next-format", 2);
    assert_eq!(s["level"], 1, "{s}");
    assert_eq!(s["finalize_to"], 2, "{s}");
    ok(cluster.ctl(&["upgrade", "rollback"]));
    rolling_restart(&cluster, None);
    let (created_a, seen) = loads.stop();
    eprintln!("rolled back: {seen:?}");
    let s = status(&cluster);
    assert_members(&s, version, 1);
    assert_eq!(
        (s["level"].as_u64(), s["prepared_ms"].is_null()),
        (Some(1), true)
    );

    // 2. Onto the new binary, finalized.
    ok(cluster.ctl(&["upgrade", "prepare"]));
    let loads = Loads::start(&dir, "/load-b");
    rolling_restart(&cluster, Some(&next));
    ok(cluster.ctl(&["upgrade", "finalize"]));
    assert_eq!(status(&cluster)["level"], 2);
    // Calls after finalize are in the new formats (they carry the caller's machine).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (created_b, seen) = loads.stop();
    eprintln!("finalized: {seen:?}");

    // The old binary can no longer follow: an observer restarted onto it refuses to run on
    // a cluster at level 2, and says why; back on the new binary it catches up.
    let observer = cluster.ids("observer")[0].to_string();
    let out = cluster.ctl(&[
        "local", "restart", "--dir", &dir, "--id", &observer, "--wait", "10s",
    ]);
    assert!(
        !out.status.success(),
        "the old binary followed a finalized cluster"
    );
    let log = std::fs::read_to_string(
        cluster
            .path()
            .join(format!("meta-{observer}/metaserver.log")),
    )
    .expect("log");
    assert!(
        log.contains("format level is (or is being finalized to) 2"),
        "the old binary's refusal is not in its log"
    );
    let next_arg = next.display().to_string();
    ok(cluster.ctl(&[
        "local", "restart", "--dir", &dir, "--id", &observer, "--bin", &next_arg,
    ]));

    // Every acknowledged create is there; every byte reads back.
    assert_eq!(common::created_under(&client, "/load-a").await, created_a);
    assert_eq!(common::created_under(&client, "/load-b").await, created_b);
    for (policy, size) in [("REPLICATED-3", "24MiB"), ("RS-3-2-1024k", "12MiB")] {
        let r = loadgen(&[
            "data",
            "--op",
            "read",
            "--policy",
            policy,
            "--size",
            size,
            "--clients",
            "2",
            "--cluster",
            &dir,
        ])
        .expect("read back");
        assert_eq!(r["errors"], 0, "{r}");
    }
}
