//! The short Jepsen campaign CI runs: `jepsen run` against real clusters under each nemesis,
//! on the `register` (linearizability) and `rw-observer` (session guarantees) workloads; and
//! the proof that the checkers find real bugs: the debug switches that let observers skip the
//! state-ID wait, or acknowledge log entries before they are durable, make the same kind of
//! run report the anomalies.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// A run's store directory, removed when the test passes and kept when it fails: a cluster
/// that did not come up leaves only its members' logs there to say why.
struct Store(Option<tempfile::TempDir>);

impl Store {
    fn new() -> Self {
        Self(Some(tempfile::tempdir().expect("tempdir")))
    }

    fn path(&self) -> &Path {
        self.0
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("the failed run's store is kept at {}", dir.keep().display());
        }
    }
}

/// Runs `jepsen run ARGS --store DIR`; returns the exit code and `results.json`.
fn jepsen(store: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_jepsen"))
        .arg("run")
        .args(args)
        .arg("--store")
        .arg(store)
        .output()
        .expect("jepsen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("$ jepsen run {}\n{stdout}{stderr}", args.join(" "));
    let run = std::fs::read_dir(store)
        .expect("store")
        .filter_map(Result::ok)
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .expect("a run directory");
    assert!(
        run.path().join("history.edn").exists(),
        "no history.edn in {}",
        run.path().display()
    );
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(run.path().join("results.json")).unwrap_or_else(|e| {
            panic!(
                "no results.json in {} ({e}); output:\n{stdout}{stderr}",
                run.path().display()
            )
        }),
    )
    .expect("results.json is JSON");
    (out.status.code().unwrap_or(-1), results)
}

fn ops_ok(results: &Value) -> u64 {
    results["ops"]["ok"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

fn campaign(workload: &str, nemesis: &str) {
    campaign_with(workload, nemesis, &[]);
}

/// A campaign on a cluster started with more `local up` flags (`--tls`).
fn campaign_with(workload: &str, nemesis: &str, cluster_args: &[&str]) {
    let store = Store::new();
    let mut args = vec![
        "--workload",
        workload,
        "--nemesis",
        nemesis,
        "--time",
        "25",
        "--rate",
        "25",
        "--interval",
        "4",
    ];
    for a in cluster_args {
        args.extend(["--cluster-arg", a]);
    }
    let (code, results) = jepsen(store.path(), &args);
    assert_eq!(
        results["valid"]["verdict"], "valid",
        "{workload} under {nemesis}: {results:#}"
    );
    assert_eq!(code, 0);
    assert!(ops_ok(&results) > 100, "too few operations: {results:#}");
    assert!(
        results["faults"].as_object().is_some_and(|f| !f.is_empty()),
        "no fault was injected: {results:#}"
    );
}

#[test]
fn register_under_kill() {
    campaign("register", "kill");
}

#[test]
fn register_under_pause() {
    campaign("register", "pause");
}

#[test]
fn register_under_membership_changes() {
    campaign("register", "member");
}

#[test]
fn rw_observer_under_kill() {
    campaign("rw-observer", "kill");
}

#[test]
fn rw_observer_under_pause() {
    campaign("rw-observer", "pause");
}

#[test]
fn rw_observer_under_membership_changes() {
    campaign("rw-observer", "member");
}

#[test]
fn register_under_partitions() {
    campaign("register", "partition");
}

#[test]
fn rw_observer_under_partitions() {
    campaign("rw-observer", "partition");
}

#[test]
fn namespace_under_kill_and_partitions() {
    campaign("namespace", "kill,partition");
}

#[test]
fn namespace_under_pause_and_membership_changes() {
    campaign("namespace", "pause,member");
}

/// Issue 16: the same guarantees on a cluster where every port is mutual TLS (members,
/// clients and the observers added by the membership nemesis authenticate by certificate).
#[test]
fn namespace_under_kill_and_partitions_on_tls() {
    campaign_with("namespace", "kill,partition", &["--tls"]);
}

#[test]
fn register_under_membership_changes_on_tls() {
    campaign_with("register", "member", &["--tls"]);
}

#[test]
fn append_under_kill_and_partitions() {
    campaign("append", "kill,partition");
}

/// `metactl-next` (the next-format build: the rolling upgrade's new version, DESIGN §11),
/// built beside the `jepsen` and `metactl` this test runs.
fn metactl_next() -> std::path::PathBuf {
    let jepsen = Path::new(env!("CARGO_BIN_EXE_jepsen"));
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-p", "raftfs-metactl", "--bin", "metactl-next"])
        .args(["--features", "next-format"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if jepsen
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "release")
    {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building metactl-next: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    jepsen.with_file_name("metactl-next")
}

/// Issue 20: a rolling upgrade as the nemesis: onto the new binary, rolled back onto the old
/// one, onto the new one again, finalized, then restarted on it; each step a planned restart
/// of every member under the workload.
fn campaign_under_upgrade(workload: &str) {
    let next = metactl_next();
    let store = Store::new();
    let next = next.display().to_string();
    let args = [
        "--workload",
        workload,
        "--nemesis",
        "upgrade",
        "--next-metactl",
        &next,
        "--time",
        "50",
        "--rate",
        "25",
        "--interval",
        "2",
    ];
    let (code, results) = jepsen(store.path(), &args);
    assert_eq!(
        results["valid"]["verdict"], "valid",
        "{workload} under upgrade: {results:#}"
    );
    assert_eq!(code, 0);
    assert!(ops_ok(&results) > 100, "too few operations: {results:#}");
    let faults = &results["faults"];
    for step in [
        "upgrade-prepare",
        "restarted-onto-new",
        "upgrade-rollback",
        "restarted-onto-old",
        "upgrade-finalize",
    ] {
        assert!(faults[step].as_u64() > Some(0), "no {step}: {results:#}");
    }
    assert!(faults["error"].is_null(), "a step failed: {results:#}");
}

#[test]
fn register_under_a_rolling_upgrade() {
    campaign_under_upgrade("register");
}

#[test]
fn append_under_a_rolling_upgrade() {
    campaign_under_upgrade("append");
}

/// With observers answering without the state-ID wait, reads right after a write see older
/// state: the session checker must say so (and the run exit non-zero).
#[test]
fn stale_observer_reads_are_reported_with_the_debug_switch() {
    let store = Store::new();
    let (code, results) = jepsen(
        store.path(),
        &[
            "--workload",
            "rw-observer",
            "--time",
            "15",
            "--rate",
            "40",
            "--cluster-arg=--debug-skip-state-id-wait",
        ],
    );
    assert_eq!(code, 1, "{results:#}");
    assert_eq!(
        results["checkers"]["read-your-own-writes"]["verdict"], "invalid",
        "{results:#}"
    );
}

/// Federation (DESIGN §10): `rw-observer` through two routers over two nameservices with
/// observers (each process writes and reads keys of both), while members of ns1 (its active
/// among them) are killed and paused: no session guarantee may break across the failovers.
#[test]
fn rw_observer_through_two_routers_over_two_nameservices_under_kill_and_pause() {
    let store = Store::new();
    let (code, results) = jepsen(
        store.path(),
        &[
            "--workload",
            "rw-observer",
            "--nameservices",
            "2",
            "--routers",
            "2",
            "--observers",
            "1",
            "--nemesis",
            "kill,pause",
            "--targets",
            "one,active",
            "--time",
            "25",
            "--rate",
            "25",
            "--interval",
            "4",
        ],
    );
    assert_eq!(results["valid"]["verdict"], "valid", "{results:#}");
    assert_eq!(code, 0);
    assert_eq!(results["nameservices"], 2, "{results:#}");
    assert!(ops_ok(&results) > 100, "too few operations: {results:#}");
    assert!(
        results["faults"].as_object().is_some_and(|f| !f.is_empty()),
        "no fault was injected: {results:#}"
    );
}

/// HDFS-17156's class of router bug: with routers that forward an older state ID than the
/// client saw of a nameservice, a read right after a write lands on an observer that has not
/// applied it, and the session checker must say so.
#[test]
fn a_router_forwarding_old_state_ids_is_reported_with_the_debug_switch() {
    let store = Store::new();
    let (code, results) = jepsen(
        store.path(),
        &[
            "--workload",
            "rw-observer",
            "--nameservices",
            "2",
            "--routers",
            "2",
            "--observers",
            "1",
            "--time",
            "15",
            // Busy enough that an observer is often a few entries behind when a read that
            // carries a too-old state ID reaches it (through a router, one hop later than a
            // direct read: at 40 ops/s about one read in a hundred was stale).
            "--rate",
            "150",
            "--concurrency",
            "10",
            "--cluster-arg=--debug-router-wrong-state-id",
        ],
    );
    assert_eq!(code, 1, "{results:#}");
    let session = ["read-your-own-writes", "monotonic-reads", "third-party"];
    assert!(
        session
            .iter()
            .any(|c| results["checkers"][c]["verdict"] == "invalid"),
        "{results:#}"
    );
    assert_eq!(
        results["checkers"]["durability"]["verdict"], "valid",
        "{results:#}"
    );
}

/// 30 s of register load with every member killed at once every few seconds (followers first,
/// the active last) and restarted.
const POWER_CUTS: &[&str] = &[
    "--workload",
    "register",
    "--nemesis",
    "kill",
    "--targets",
    "all",
    "--interval",
    "3",
    "--time",
    "30",
    "--rate",
    "30",
];

/// With log entries acknowledged before they are durable, killing every member (followers
/// first, the active last; restarted in that order) loses acknowledged writes, and the
/// linearizability checker must find them. A power cut does not lose an acknowledged write
/// every time (the active may win the next election with its longer log), so up to three runs
/// are given to find one.
#[test]
fn lost_writes_are_reported_when_entries_are_acknowledged_before_fsync() {
    let store = Store::new();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (code, results) = jepsen(
            store.path(),
            &[POWER_CUTS, &["--cluster-arg=--debug-ack-before-fsync"]].concat(),
        );
        if results["checkers"]["linearizable"]["verdict"] == "invalid" {
            assert_eq!(code, 1);
            return;
        }
        seen.push(results);
    }
    panic!("three runs found no lost write: {seen:#?}");
}

/// The same power cuts without the switch: every acknowledged write survives.
#[test]
fn power_cuts_lose_no_acknowledged_write() {
    let store = Store::new();
    let (code, results) = jepsen(store.path(), POWER_CUTS);
    assert_eq!(results["valid"]["verdict"], "valid", "{results:#}");
    assert_eq!(code, 0);
}
