//! The active's background workers (redundancy scan, garbage sweep, lease recovery) through
//! the real path: named, their rounds visible in `cluster status --json` and in `/metrics`,
//! and each one reported stopped before a metaserver that got SIGTERM exits.

mod common;

use std::time::{Duration, Instant};

use common::LocalCluster;

const WORKERS: [&str; 5] = [
    "block-keys",
    "garbage-sweep",
    "lease-recovery",
    "reclaim",
    "redundancy-scan",
];

fn status(cluster: &LocalCluster) -> serde_json::Value {
    let out = cluster.ctl(&["cluster", "status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// `raftfs_meta_worker_<what>{worker="<name>"}` from a metaserver's `/metrics`.
fn worker_metric(addr: &str, what: &str, worker: &str) -> Option<f64> {
    let body = common::http_get(addr, "/metrics").expect("GET /metrics");
    let prefix = format!("raftfs_meta_worker_{what}{{worker=\"{worker}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn workers_report_their_rounds_and_stop_before_a_sigterm_exit() {
    let cluster = LocalCluster::up(1, &["--observers", "0"]);

    // Every worker runs rounds on the active (the scan every redundancy-scan-ms, the sweep
    // every 3 s, lease recovery every lease-check-ms).
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers = loop {
        let s = status(&cluster);
        let workers = s["workers"].as_array().expect("workers").clone();
        let ran = |name: &str| {
            workers
                .iter()
                .any(|w| w["name"] == name && w["runs"].as_u64().is_some_and(|r| r >= 1))
        };
        if WORKERS.iter().all(|w| ran(w)) || Instant::now() > deadline {
            break workers;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let names: Vec<&str> = workers.iter().filter_map(|w| w["name"].as_str()).collect();
    assert_eq!(names, WORKERS, "{workers:?}");
    for w in &workers {
        assert!(w["runs"].as_u64().is_some_and(|r| r >= 1), "{w}");
        assert_eq!(w["errors"], 0, "{w}");
        assert!(w["last_run_ms"].as_u64().is_some(), "{w}");
        assert!(w["state"] == "idle" || w["state"] == "running", "{w}");
    }

    let file = cluster.file();
    let meta = &file.meta[0];
    let addr = meta.metrics_addr.as_deref().expect("metrics address");
    for w in WORKERS {
        let runs = worker_metric(addr, "runs_total", w).unwrap_or(0.0);
        assert!(runs >= 1.0, "{w}: worker_runs_total {runs}");
        assert_eq!(worker_metric(addr, "errors_total", w), Some(0.0), "{w}");
    }

    // SIGTERM: `local stop` waits for the process to exit (a SIGKILL after its grace would
    // leave no "metaserver stopped" line).
    cluster.stop(meta.id);
    let log = std::fs::read_to_string(cluster.path().join("meta-1/metaserver.log"))
        .expect("metaserver log");
    let at = |needle: &str| log.find(needle);
    let exit = at("metaserver stopped")
        .unwrap_or_else(|| panic!("no 'metaserver stopped' in the log:\n{log}"));
    for w in WORKERS {
        let stopped = log
            .match_indices("worker stopped")
            .find(|(i, _)| log[*i..].lines().next().is_some_and(|l| l.contains(w)))
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("{w} never reported stopped:\n{log}"));
        assert!(stopped < exit, "{w} stopped after the exit line:\n{log}");
    }
}
