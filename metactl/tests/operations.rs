//! Operations on real processes (issue 20): a planned stop of the active hands its
//! leadership to the most caught-up voter; a rolling restart of every metaserver and
//! blockserver under a client load fails no call and loses no acknowledged write.

mod common;

use std::time::Duration;

use common::{LocalCluster, content, get_file, put_file};
use raftfs_client::{Client, ClientConfig};

fn client_of(cluster: &LocalCluster) -> Client {
    let mut c: ClientConfig = cluster.client_config();
    c.failover_deadline = Duration::from_secs(30);
    Client::new(c).expect("client")
}

/// Every metaserver's whole log.
fn meta_logs(cluster: &LocalCluster) -> String {
    (1..=8)
        .filter_map(|i| {
            std::fs::read_to_string(cluster.path().join(format!("meta-{i}/metaserver.log"))).ok()
        })
        .collect()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// SIGTERM of the active (`local stop`, not `--kill`): before it stops serving, it hands
/// the leadership to a voter, which leads afterwards, and says so in its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_stop_of_the_active_hands_its_leadership_over() {
    let cluster = LocalCluster::up(3, &["--observers", "0"]);
    let client = client_of(&cluster);
    client.mkdir("/before", true).await.expect("mkdir");
    // A leader elected less than a lease ago grants no vote (openraft): the hand-off of a
    // fresh one takes a second ask; a leader of some standing hands over at once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = client.cluster_status().await.expect("status");
    let old = before.leader.get();
    ok(cluster.ctl(&[
        "local",
        "stop",
        "--dir",
        &cluster.dir_arg(),
        "--id",
        &old.to_string(),
    ]));
    let after = client.cluster_status().await.expect("status");
    assert_ne!(after.leader.get(), old, "{after:?}");
    assert!(after.term > before.term, "{before:?} -> {after:?}");
    // The stopped member handed over to the member that leads now.
    let log = std::fs::read_to_string(cluster.path().join(format!("meta-{old}/metaserver.log")))
        .expect("the stopped member's log");
    let handed = format!("stopping: leadership handed over to={}", after.leader.get());
    assert!(log.contains(&handed), "no {handed:?} in its log:\n{log}");
    client.mkdir("/after", true).await.expect("writes go on");
}

/// `local rolling-restart` under a `loadgen meta --op create` load: every metaserver
/// (followers first, then the active: one hand-off) and every blockserver restarts, one at
/// a time, each waited for until healthy. No create fails, every acknowledged create is
/// there afterwards, and the files written before read back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_call() {
    let cluster = LocalCluster::up(
        3,
        &["--observers", "0", "--blockservers", "3", "--racks", "3"],
    );
    let client = client_of(&cluster);
    let mut files = Vec::new();
    client.mkdir("/data", true).await.expect("mkdir");
    for i in 0..3u8 {
        let path = format!("/data/f{i}");
        let bytes = content(300_000 + usize::from(i) * 1_000, i);
        put_file(&client, &path, "REPLICATED-3", &bytes).await;
        files.push((path, bytes));
    }
    let dir = cluster.dir_arg();
    let load = std::process::Command::new(common::loadgen_bin())
        .args([
            "--rate",
            "25",
            "--json",
            "meta",
            "--op",
            "create",
            "--clients",
            "4",
        ])
        .args(["--ops", "1500", "--roots", "/load", "--cluster", &dir])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("loadgen");
    tokio::time::sleep(Duration::from_secs(3)).await;
    ok(cluster.ctl(&["local", "rolling-restart", "--dir", &dir]));
    let out = load.wait_with_output().expect("loadgen ends");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    eprintln!("load: {report}");
    assert_eq!(report["errors"], 0, "{report}");
    let log = meta_logs(&cluster);
    assert!(
        log.contains("stopping: leadership handed over"),
        "no hand-off"
    );
    // Every create is there.
    assert_eq!(common::created_under(&client, "/load").await, 1500);
    for (path, bytes) in &files {
        assert_eq!(&get_file(&client, path).await, bytes, "{path}");
    }
}

/// `metactl upgrade` on a cluster of one binary (DESIGN §11): every member reports its binary
/// and the newest format level it writes; finalize needs a prepared upgrade and every member's
/// answer (a member down refuses it), and ends the upgrade at the level they all write;
/// rollback cancels a prepared one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_steps_need_a_prepared_upgrade_and_every_members_answer() {
    let cluster = LocalCluster::up(2, &["--observers", "1"]);
    let status = |cluster: &LocalCluster| -> serde_json::Value {
        serde_json::from_str(&ok(cluster.ctl(&["upgrade", "status", "--json"]))).expect("json")
    };
    let fails = |args: &[&str], why: &str| {
        let out = cluster.ctl(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    };
    let s = status(&cluster);
    assert_eq!(s["level"], 1);
    assert!(s["prepared_ms"].is_null());
    let members = s["members"].as_array().expect("members");
    assert_eq!(members.len(), 3);
    let version = env!("CARGO_PKG_VERSION");
    for m in members {
        assert_eq!(m["binary"], version, "{m}");
        assert_eq!(m["newest_level"], 1, "{m}");
    }
    assert_eq!(s["finalize_to"], 1);

    fails(&["upgrade", "finalize"], "prepared upgrade");
    fails(&["upgrade", "rollback"], "prepared upgrade");
    ok(cluster.ctl(&["upgrade", "prepare"]));
    fails(&["upgrade", "prepare"], "prepared upgrade");
    assert!(status(&cluster)["prepared_ms"].as_u64().is_some());
    ok(cluster.ctl(&["upgrade", "rollback"]));
    assert!(status(&cluster)["prepared_ms"].is_null());

    // With the observer down, finalize is refused: it may still run another binary.
    ok(cluster.ctl(&["upgrade", "prepare"]));
    let observer = cluster.ids("observer")[0];
    cluster.stop(observer);
    fails(&["upgrade", "finalize"], "did not answer");
    assert!(status(&cluster)["finalize_to"].is_null());
    cluster.start(observer);
    ok(cluster.ctl(&["upgrade", "finalize"]));
    let s = status(&cluster);
    assert_eq!(
        (s["level"].as_u64(), s["prepared_ms"].is_null()),
        (Some(1), true)
    );
}
