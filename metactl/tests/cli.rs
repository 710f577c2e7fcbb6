//! `metactl` against a real 3-voter cluster: the file commands behave like `hdfs dfs`, bad
//! input gets a typed error and a non-zero exit, and changes nothing.

mod common;

use common::{LocalCluster, metactl, snapshot_tree};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(out: &std::process::Output, needle: &str) {
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: "),
        "stderr should start with `error: `: {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_commands_and_bad_input() {
    let cluster = LocalCluster::up(3, &[]);

    // cluster status
    let status: serde_json::Value =
        serde_json::from_str(&ok(&cluster.ctl(&["cluster", "status", "--json"]))).expect("json");
    assert!(
        status["leader"]
            .as_u64()
            .is_some_and(|l| (1..=3).contains(&l))
    );
    let members = status["members"].as_array().expect("members");
    // `local up` starts one observer by default.
    assert_eq!(members.len(), 4);
    let roles: Vec<&str> = members.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "voter").count(),
        3,
        "{roles:?}"
    );
    assert_eq!(
        roles.iter().filter(|r| **r == "observer").count(),
        1,
        "{roles:?}"
    );
    for m in members {
        assert!(
            m["applied_index"].as_u64().is_some()
                && m["lag"].as_u64().is_some()
                && m["addr"].is_string()
        );
    }
    assert!(ok(&cluster.ctl(&["cluster", "status"])).contains("active"));

    // mkdir, touch, ls, stat, mv, rm
    ok(&cluster.ctl(&["fs", "mkdir", "-p", "/user/alice/logs"]));
    ok(&cluster.ctl(&["fs", "touch", "/user/alice/a.txt", "/user/alice/b.txt"]));
    let ls = ok(&cluster.ctl(&["fs", "ls", "/user/alice"]));
    assert!(ls.starts_with("Found 3 items"), "{ls}");
    assert!(
        ls.contains("/user/alice/logs") && ls.lines().any(|l| l.starts_with("drwxr-xr-x")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("-rw-r--r--") && l.ends_with("/user/alice/a.txt")),
        "{ls}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&cluster.ctl(&["fs", "ls", "--json", "/user/alice"])))
            .expect("json");
    let names: Vec<&str> = json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["a.txt", "b.txt", "logs"]);
    let stat: serde_json::Value = serde_json::from_str(&ok(&cluster.ctl(&[
        "fs",
        "stat",
        "--json",
        "/user/alice/a.txt",
    ])))
    .expect("json");
    assert_eq!(stat["kind"], "file");
    assert_eq!(stat["length"], 0);
    assert_eq!(stat["under_construction"], false);
    assert!(stat["state_id"].as_u64().is_some_and(|s| s > 0));
    assert!(ok(&cluster.ctl(&["fs", "stat", "/user/alice"])).contains("directory"));
    ok(&cluster.ctl(&["fs", "mv", "/user/alice/a.txt", "/user/alice/logs"]));
    ok(&cluster.ctl(&["fs", "stat", "/user/alice/logs/a.txt"]));
    ok(&cluster.ctl(&["fs", "mv", "/user/alice/b.txt", "/user/alice/c.txt"]));
    assert!(
        ok(&cluster.ctl(&["fs", "rm", "/user/alice/c.txt"])).contains("Deleted /user/alice/c.txt")
    );

    // discovery by --meta and by RAFTFS_META
    let addrs = cluster.file().meta_addrs().join(",");
    ok(&metactl(&["--meta", &addrs, "fs", "stat", "/user"]));
    let env_out = std::process::Command::new(common::metactl_bin())
        .args(["fs", "ls", "/user"])
        .env("RAFTFS_META", &addrs)
        .output()
        .expect("run");
    assert!(ok(&env_out).contains("/user/alice"));

    // Read modes: one metactl process is one client; with auto-msync it sees what others
    // wrote just before.
    ok(&cluster.ctl(&["fs", "mkdir", "/user/bob"]));
    for auto in ["always", "never", "500ms"] {
        let ls = ok(&cluster.ctl(&[
            "--read-mode",
            "observer",
            "--auto-msync",
            auto,
            "fs",
            "ls",
            "/user",
        ]));
        if auto == "always" {
            assert!(ls.contains("/user/bob"), "{ls}");
        }
    }
    let members: serde_json::Value =
        serde_json::from_str(&ok(&cluster.ctl(&["member", "list", "--json"]))).expect("json");
    assert_eq!(members.as_array().map(Vec::len), Some(4));

    // Bad input: a typed error, one line on stderr, non-zero exit, and nothing changes.
    let client = cluster.client();
    let before = snapshot_tree(&client).await;
    fails(
        &cluster.ctl(&["fs", "mkdir", "relative/path"]),
        "invalid path",
    );
    fails(
        &cluster.ctl(&["fs", "mkdir", "/user/../etc"]),
        "invalid path",
    );
    fails(&cluster.ctl(&["fs", "mkdir", "/user//x"]), "invalid path");
    let long = format!("/{}", "x".repeat(256));
    fails(&cluster.ctl(&["fs", "mkdir", &long]), "invalid path");
    fails(
        &cluster.ctl(&["fs", "mkdir", "/no/such/parent"]),
        "parent directory does not exist",
    );
    fails(&cluster.ctl(&["fs", "mkdir", "/user"]), "already exists");
    fails(&cluster.ctl(&["fs", "rm", "/user"]), "not empty");
    fails(&cluster.ctl(&["fs", "rm", "/"]), "root");
    fails(&cluster.ctl(&["fs", "rm", "/nope"]), "no such file");
    fails(
        &cluster.ctl(&["fs", "mv", "/user", "/user/alice/logs/inside"]),
        "own subtree",
    );
    fails(&cluster.ctl(&["fs", "mv", "/nope", "/x"]), "no such file");
    fails(
        &cluster.ctl(&["fs", "stat", "/user/alice/logs/a.txt/deeper"]),
        "not a directory",
    );
    fails(
        &cluster.ctl(&["local", "start", "--dir", &cluster.dir_arg(), "--id", "9"]),
        "no metaserver 9",
    );
    // A member whose port was taken while it was down is not started, with a clear error;
    // it starts once the port is free again.
    let observer = cluster.ids("observer")[0];
    cluster.kill(observer);
    // Its port is free once its last thread has gone (the leader shows as a zombie before).
    let start = std::time::Instant::now();
    let squatter = loop {
        match std::net::TcpListener::bind(cluster.addr_of(observer)) {
            Ok(l) => break l,
            Err(e) if start.elapsed() < std::time::Duration::from_secs(10) => {
                assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("the killed observer's port never came free: {e}"),
        }
    };
    let id = observer.to_string();
    fails(
        &cluster.ctl(&["local", "start", "--dir", &cluster.dir_arg(), "--id", &id]),
        &format!("listening at {} again", cluster.addr_of(observer)),
    );
    drop(squatter);
    cluster.start(observer);
    fails(
        &cluster.ctl(&["local", "stop", "--dir", &cluster.dir_arg(), "--id", "0"]),
        "no metaserver 0",
    );
    fails(
        &metactl(&["--meta", "", "fs", "ls", "/"]),
        "no metaserver given",
    );
    fails(&cluster.ctl(&["member", "remove", "9"]), "unknown node 9");
    fails(&cluster.ctl(&["member", "promote", "1"]), "already a voter");
    fails(
        &cluster.ctl(&["member", "transfer-leader", "4"]),
        "promote it first",
    );
    assert_eq!(
        snapshot_tree(&client).await,
        before,
        "bad input changed the tree"
    );

    // rm -r works where rm did not
    assert!(ok(&cluster.ctl(&["fs", "rm", "-r", "/user"])).contains("Deleted /user"));
    assert!(snapshot_tree(&client).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_attributes_like_hdfs_setfattr_and_getfattr() {
    let cluster = LocalCluster::up(3, &["--observers", "0"]);
    ok(&cluster.ctl(&["fs", "touch", "/x"]));
    ok(&cluster.ctl(&["fs", "setfattr", "-n", "user.color", "-v", "blue", "/x"]));
    let got = ok(&cluster.ctl(&["fs", "getfattr", "-n", "user.color", "/x"]));
    assert_eq!(got, "# file: /x\nuser.color=\"blue\"\n");
    // Compare-and-set: a wrong expectation changes nothing.
    fails(
        &cluster.ctl(&[
            "fs",
            "setfattr",
            "-n",
            "user.color",
            "-v",
            "red",
            "--expect",
            "green",
            "/x",
        ]),
        "expected value",
    );
    ok(&cluster.ctl(&[
        "fs",
        "setfattr",
        "-n",
        "user.color",
        "-v",
        "red",
        "--expect",
        "blue",
        "/x",
    ]));
    fails(
        &cluster.ctl(&[
            "fs",
            "setfattr",
            "-n",
            "user.color",
            "-v",
            "x",
            "--expect-absent",
            "/x",
        ]),
        "expected value",
    );
    ok(&cluster.ctl(&[
        "fs", "setfattr", "-n", "user.log", "-v", "a,", "--append", "/x",
    ]));
    ok(&cluster.ctl(&[
        "fs", "setfattr", "-n", "user.log", "-v", "b,", "--append", "/x",
    ]));
    let all = ok(&cluster.ctl(&["fs", "getfattr", "-d", "/x"]));
    assert!(all.contains("user.color=\"red\""), "{all}");
    assert!(all.contains("user.log=\"a,b,\""), "{all}");
    ok(&cluster.ctl(&["fs", "setfattr", "-x", "user.color", "/x"]));
    fails(
        &cluster.ctl(&["fs", "getfattr", "-n", "user.color", "/x"]),
        "no extended attribute",
    );
    fails(
        &cluster.ctl(&["fs", "setfattr", "-n", "bad", "-v", "1", "/x"]),
        "must start with",
    );
    fails(
        &cluster.ctl(&["fs", "setfattr", "-n", "user.a", "-v", "1", "/missing"]),
        "no such file",
    );
}

/// Every `raftfs_meta_<name>` sample of a member's `/metrics`, by name (labels dropped).
fn scrape(addr: &str) -> std::collections::HashMap<String, f64> {
    let body = common::http_get(addr, "/metrics").expect("GET /metrics");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let name = name.split('{').next()?.strip_prefix("raftfs_meta_")?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The journal's step timings (`journal_*_seconds`) are filled by the real path: every voter
/// times its log appends and applies; only the active times AppendEntries round trips and
/// whole entries, since only it replicates and proposes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_step_timings_in_metrics() {
    let cluster = LocalCluster::up(3, &["--observers", "0"]);
    let client = cluster.client();
    client.mkdir("/timed", false).await.expect("mkdir");
    let leader = || -> u64 {
        let status: serde_json::Value =
            serde_json::from_str(&ok(&cluster.ctl(&["cluster", "status", "--json"])))
                .expect("json");
        status["leader"].as_u64().expect("an active")
    };
    let scrape_all = || -> Vec<(u64, std::collections::HashMap<String, f64>)> {
        cluster
            .file()
            .meta
            .iter()
            .map(|m| {
                (
                    m.id,
                    scrape(m.metrics_addr.as_deref().expect("metrics address")),
                )
            })
            .collect()
    };
    // A member that was active for a moment at startup has counts of its own; what the
    // creates below add is what is checked.
    let active_before = leader();
    let before = scrape_all();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .create(
                        &format!("/timed/f{i}"),
                        &raftfs_client::CreateOptions::default(),
                    )
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("create");
    }
    let active = leader();
    let count = |m: &std::collections::HashMap<String, f64>, name: &str| {
        m.get(&format!("journal_{name}_seconds_count"))
            .copied()
            .unwrap_or(0.0)
    };
    // Followers apply once they hear of the commit (the next heartbeat): poll.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let members = scrape_all();
        let settled = members
            .iter()
            .all(|(_, m)| count(m, "log_append") >= 1.0 && count(m, "apply") >= 1.0);
        if settled || std::time::Instant::now() > deadline {
            let earlier = |id: u64, name: &str| {
                before
                    .iter()
                    .find(|(b, _)| *b == id)
                    .map_or(0.0, |(_, m)| count(m, name))
            };
            for (id, m) in &members {
                assert!(count(m, "log_append") >= 1.0, "member {id}: {m:?}");
                assert!(count(m, "apply") >= 1.0, "member {id}: {m:?}");
                assert!(m["journal_log_append_seconds_sum"] > 0.0, "member {id}");
                if *id == active {
                    assert!(count(m, "append_entries") >= 1.0, "active {id}: {m:?}");
                    assert!(count(m, "entry") >= 1.0, "active {id}: {m:?}");
                    assert!(m["journal_entry_seconds_sum"] > 0.0);
                }
                if active == active_before {
                    for name in ["entry", "append_entries"] {
                        let added = count(m, name) - earlier(*id, name);
                        if *id == active {
                            assert!(added >= 1.0, "active {id} timed no {name}: {m:?}");
                        } else {
                            assert_eq!(added, 0.0, "follower {id} timed {name}: {m:?}");
                        }
                    }
                }
            }
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
