//! Federation on real processes (DESIGN §10, issue 18): two nameservices, each its own Raft
//! group, share nine blockservers, which keep one block pool for each. The same path in both
//! nameservices gets the same group ids; the pools keep them apart on every disk, in every
//! read and in every deletion.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::dial::{Dial, channel, kind_of};
use common::{LocalCluster, content, get_file, http_get, metactl, put_file};
use raftfs_client::discovery::ClusterFile;
use raftfs_client::{Client, ClientConfig, ReadMode};
use raftfs_proto as pb;
use raftfs_proto::ErrorKind;
use raftfs_proto::block_servers_client::BlockServersClient;
use raftfs_proto::namespace_client::NamespaceClient;

fn client_of(dir: &Path) -> Client {
    let file = ClusterFile::read(dir).expect("the nameservice's cluster.json");
    let mut c = ClientConfig::new(file.meta_addrs());
    c.failover_deadline = Duration::from_secs(30);
    Client::new(c).expect("client")
}

/// The finalized files of pool `pool` (a nameservice's name, or "" for the unnamed pool's
/// place, the data directory itself) on every blockserver.
fn pool_files(cluster: &LocalCluster, pool: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for b in &cluster.file().block {
        let data = PathBuf::from(&b.data_dir);
        let dir = if pool.is_empty() {
            data.join("finalized")
        } else {
            data.join("pools").join(pool).join("finalized")
        };
        out.extend(
            std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
    }
    out.sort();
    out
}

/// The bytes of every file in `files`.
fn snapshot(files: &[PathBuf]) -> Vec<(PathBuf, Vec<u8>)> {
    files
        .iter()
        .map(|f| (f.clone(), std::fs::read(f).expect("block file")))
        .collect()
}

/// Two nameservices of three voters each, sharing `blockservers` blockservers in 3 racks.
fn federated(blockservers: &str, extra: &[&str]) -> LocalCluster {
    let mut args = vec![
        "--nameservices",
        "2",
        "--observers",
        "0",
        "--blockservers",
        blockservers,
        "--racks",
        "3",
        // Each nameservice is reached directly here; the router has its own test.
        "--routers",
        "0",
    ];
    args.extend_from_slice(extra);
    LocalCluster::up(3, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nameservices_keep_their_pools_apart_and_one_keeps_the_mount_table() {
    let cluster = federated("9", &[]);
    let top = cluster.file();
    assert!(top.meta.is_empty(), "the top directory lists no members");
    let names: Vec<&str> = top.nameservices.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["ns1", "ns2"]);
    let ns1_dir = PathBuf::from(&top.nameservices[0].dir);
    let ns2_dir = PathBuf::from(&top.nameservices[1].dir);
    let (ns1, ns2) = (client_of(&ns1_dir), client_of(&ns2_dir));

    // Every blockserver registered with both nameservices.
    for c in [&ns1, &ns2] {
        let report = c.fsck("/", false).await.expect("fsck");
        assert_eq!(report.live_blockservers, 9);
    }
    // Without routers, a client of the whole directory is told to pick a nameservice.
    let out = metactl(&["--cluster", &cluster.dir_arg(), "fs", "ls", "/"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("federated cluster"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same paths in both: the same group ids, different bytes.
    let (a1, a2) = (content(3 << 20, 1), content(3 << 20, 2));
    let (b1, b2) = (content(6_500_000, 3), content(6_400_000, 4));
    put_file(&ns1, "/f", "REPLICATED-3", &a1).await;
    put_file(&ns2, "/f", "REPLICATED-3", &a2).await;
    put_file(&ns1, "/ec", "RS-6-3-1024k", &b1).await;
    put_file(&ns2, "/ec", "RS-6-3-1024k", &b2).await;
    let g1 = ns1.get_blocks("/f", 0, 0, 0).await.expect("blocks").groups;
    let g2 = ns2.get_blocks("/f", 0, 0, 0).await.expect("blocks").groups;
    assert_eq!(g1[0].id, g2[0].id, "group ids are scoped by nameservice");

    assert_eq!(get_file(&ns1, "/f").await, a1);
    assert_eq!(get_file(&ns2, "/f").await, a2);
    assert_eq!(get_file(&ns1, "/ec").await, b1);
    assert_eq!(get_file(&ns2, "/ec").await, b2);

    // On disk: each pool in its own directory, nothing in the unnamed pool's place.
    let files1 = pool_files(&cluster, "ns1");
    let files2 = pool_files(&cluster, "ns2");
    // 3 replicas (data + checksum file each) + the EC group's 9 internal blocks (more than
    // one stripe's data cells: every block holds bytes).
    assert_eq!(files1.len(), 2 * (3 + 9), "{files1:?}");
    assert_eq!(files2.len(), 2 * (3 + 9), "{files2:?}");
    assert!(pool_files(&cluster, "").is_empty());
    let before2 = snapshot(&files2);

    // `blockserver list`: each nameservice's active shows its own pool's bytes on every
    // server (the block data files on disk, checksum files aside) and every pool's together.
    let data_bytes = |files: &[PathBuf]| -> u64 {
        files
            .iter()
            .filter(|f| f.extension().is_none())
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .sum()
    };
    let (want1, want2) = (data_bytes(&files1), data_bytes(&files2));
    let listed = |dir: &Path| -> serde_json::Value {
        let out = metactl(&[
            "--cluster",
            dir.to_str().expect("utf8"),
            "blockserver",
            "list",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("blockserver list --json")
    };
    let sum = |v: &serde_json::Value, field: &str| -> u64 {
        v["blockservers"]
            .as_array()
            .expect("servers")
            .iter()
            .map(|b| b[field].as_u64().expect("a count"))
            .sum()
    };
    let start = Instant::now();
    loop {
        let (v1, v2) = (listed(&ns1_dir), listed(&ns2_dir));
        assert_eq!(
            (&v1["nameservice"], &v2["nameservice"]),
            (&"ns1".into(), &"ns2".into())
        );
        assert_eq!(v1["blockservers"].as_array().map(Vec::len), Some(9));
        let got = (
            sum(&v1, "pool_used"),
            sum(&v2, "pool_used"),
            sum(&v1, "used"),
        );
        if got == (want1, want2, want1 + want2) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pool usage {got:?}, on disk {want1} + {want2}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Deleting in ns1 empties its pool and leaves every byte of ns2's alone.
    ns1.delete("/f", false).await.expect("delete");
    ns1.delete("/ec", false).await.expect("delete");
    let start = Instant::now();
    while !pool_files(&cluster, "ns1").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "ns1's blocks not deleted: {:?}\n{}",
            pool_files(&cluster, "ns1"),
            LocalCluster::logs(cluster.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a wrongly scoped deletion time to happen before looking.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(snapshot(&pool_files(&cluster, "ns2")), before2);
    assert_eq!(get_file(&ns2, "/f").await, a2);
    assert_eq!(get_file(&ns2, "/ec").await, b2);

    // A blockserver that registers for ns1 with a member of ns2 is refused: pools never mix.
    let ns2_member = ClusterFile::read(&ns2_dir).expect("ns2").meta_addrs()[0].clone();
    let to_ns2 = channel(&ns2_member, &Dial::Plain);
    let register = |nameservice: &str| pb::RegisterRequest {
        node_id: 1,
        addr: top.block[0].addr.clone(),
        rack: "r1".into(),
        nameservice: nameservice.into(),
        ..Default::default()
    };
    let mut bs = BlockServersClient::new(to_ns2.clone());
    let refused = bs
        .register(register("ns1"))
        .await
        .expect_err("registered for another nameservice");
    assert_eq!(kind_of(&refused), Some(ErrorKind::WrongNameservice));
    let accepted = bs.register(register("ns2")).await.expect("its own");
    assert_eq!(accepted.get_ref().nameservice, "ns2");
    // Nor does a corrupt report of ns1's group reach ns2's copy of the same group id.
    let corrupt = NamespaceClient::new(to_ns2)
        .report_corrupt(pb::ReportCorruptRequest {
            group: g1[0].id.get(),
            index: 0,
            node_id: 1,
            reason: "test".into(),
            nameservice: "ns1".into(),
            ..Default::default()
        })
        .await
        .expect_err("a corrupt report for another nameservice's pool");
    assert_eq!(kind_of(&corrupt), Some(ErrorKind::WrongNameservice));
    assert_eq!(get_file(&ns2, "/f").await, a2);

    // The mount table, kept by ns1: edited by the admin through its journal, read by anyone
    // at a state ID, refused to a user and for a mount point taken.
    let ns1_arg = ns1_dir.to_str().expect("utf8").to_owned();
    let ctl = |args: &[&str]| {
        let mut all = vec!["--cluster", ns1_arg.as_str()];
        all.extend_from_slice(args);
        metactl(&all)
    };
    for (at, to) in [("/user", "ns1:/user"), ("/logs", "ns2:/")] {
        let out = ctl(&["mount", "add", at, to]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let taken = ctl(&["mount", "add", "/user", "ns2:/"]);
    assert!(!taken.status.success(), "a mount point added twice");
    let user = ctl(&["--user", "alice", "mount", "add", "/x", "ns1:/x"]);
    assert!(!user.status.success(), "a user edited the mount table");
    assert!(ctl(&["mount", "default", "ns1"]).status.success());
    let listed = ctl(&["mount", "list", "--json"]);
    let listed: serde_json::Value =
        serde_json::from_slice(&listed.stdout).expect("mount list --json");
    assert_eq!(listed["default_nameservice"], "ns1");
    assert_eq!(listed["mounts"].as_array().map(Vec::len), Some(2));
    let table = ns1.mount_table().await.expect("the table");
    let path = |p: &str| raftfs_core::namespace::NsPath::parse(p).expect("path");
    let r = table.resolve(&path("/logs/app/1.log")).expect("resolve");
    assert_eq!(
        (r.nameservice.as_str(), r.path),
        ("ns2", path("/app/1.log"))
    );
    assert!(matches!(
        table.resolve_rename(&path("/user/a"), &path("/logs/a")),
        Err(raftfs_core::federation::FederationError::CrossNamespaceRename { .. })
    ));
    // ns2 keeps no table.
    assert!(ns2.mount_table().await.expect("ns2's").is_empty());
    assert!(ctl(&["mount", "remove", "/logs"]).status.success());
    assert_eq!(ns1.mount_table().await.expect("the table").len(), 1);

    let down = metactl(&["local", "down", "--dir", &cluster.dir_arg()]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

/// Two nameservices rebuild at once after one blockserver dies: every task of both pools
/// charges the same buckets, so the rack pair's budget holds for the two together, as it
/// would for one (DESIGN §10: budgets shared across pools).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rack_pair_budget_holds_across_both_pools_rebuilding_at_once() {
    // 0.5 MB/s: with two nameservices and twelve blockservers on this machine's two cores,
    // the unthrottled rebuild crosses at about 2 MB/s, so a higher budget would not bind
    // (and the test could not fail).
    const BUDGET: f64 = 0.5e6;
    let cluster = federated("12", &["--dead-after-secs", "3"]);
    let top = cluster.file();
    let dirs: Vec<PathBuf> = top
        .nameservices
        .iter()
        .map(|n| PathBuf::from(&n.dir))
        .collect();
    let clients: Vec<Client> = dirs.iter().map(|d| client_of(d)).collect();
    let mut files = Vec::new();
    // Only ns1's active is told the budget, on every rack pair (a rebuilt block may land in
    // any rack): ns2 sends none (unlimited), which lifts no limit, since the servers run at
    // the lowest rate any pool's active sent. A server that took whichever heartbeat came
    // last would let ns2's tasks, and every task half the time, run unlimited.
    let racks = ["r1", "r2", "r3"];
    let pairs: Vec<(&str, &str)> = racks
        .iter()
        .flat_map(|f| racks.iter().filter(move |t| *t != f).map(move |t| (*f, *t)))
        .collect();
    let mut args = vec![
        "--cluster".to_owned(),
        dirs[0].to_str().expect("utf8").to_owned(),
        "reconstruction".into(),
        "throttle".into(),
    ];
    for (f, t) in &pairs {
        args.extend(["--rack-pair".to_owned(), format!("{f}:{t}=0.5")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = metactl(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, c) in clients.iter().enumerate() {
        let data = content(36 << 20, 10 + i as u8);
        put_file(c, "/f", "RS-6-3-1024k", &data).await;
        files.push(data);
    }
    for c in &clients {
        common::wait_healthy(c, 12, Duration::from_secs(30)).await;
    }
    // A server that holds internal blocks of both pools: both nameservices rebuild.
    let holds = |b: &raftfs_client::discovery::BlockEntry, pool: &str| {
        std::fs::read_dir(
            PathBuf::from(&b.data_dir)
                .join("pools")
                .join(pool)
                .join("finalized"),
        )
        .is_ok_and(|mut d| d.next().is_some())
    };
    let victim = top
        .block
        .iter()
        .find(|b| holds(b, "ns1") && holds(b, "ns2"))
        .expect("a server with blocks of both pools")
        .id;
    let crossed = |c: &LocalCluster| -> Vec<u64> {
        pairs
            .iter()
            .map(|(f, t)| common::crossing(c, f, t))
            .collect()
    };
    let before = crossed(&cluster);
    let start = Instant::now();
    cluster.kill_block(victim);
    // Per pair: the bytes so far, and when they last grew.
    let mut last: Vec<(u64, Instant)> = before.iter().map(|b| (*b, start)).collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        for (l, now) in last.iter_mut().zip(crossed(&cluster)) {
            if now > l.0 {
                *l = (now, Instant::now());
            }
        }
        let mut healthy = true;
        for c in &clients {
            let r = c.fsck("/", false).await.expect("fsck");
            healthy &= r.live_blockservers == 11 && r.degraded == 0 && r.missing == 0;
        }
        if healthy && last.iter().zip(&before).any(|(l, b)| l.0 > *b) {
            break;
        }
        assert!(Instant::now() < deadline, "the rebuild never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each pair from the kill (no byte can cross before it) to its last byte counted; the
    // buckets allow a burst of a fifth of a second per server of the receiving rack.
    for (((f, t), l), b) in pairs.iter().zip(&last).zip(&before) {
        let bytes = (l.0 - b) as f64;
        let seconds = l.1.duration_since(start).as_secs_f64();
        let allowed = BUDGET * seconds * 1.1 + BUDGET * 0.2 * 4.0;
        eprintln!("{f} -> {t}: {bytes} bytes in {seconds:.2} s");
        assert!(
            bytes <= allowed,
            "{bytes} bytes crossed {f} -> {t} in {seconds:.2} s for two pools: more than 0.5 MB/s allows ({allowed:.0})"
        );
    }
    // Both pools' rebuilt files read back right.
    for (c, data) in clients.iter().zip(&files) {
        assert_eq!(&get_file(c, "/f").await, data);
    }
}

fn router_client(addr: &str, mode: ReadMode) -> Client {
    let mut c = ClientConfig::new(vec![addr.to_owned()]);
    c.failover_deadline = Duration::from_secs(30);
    c.read_mode = mode;
    Client::new(c).expect("client")
}

/// Waits until `f` holds, for at most `within`.
async fn eventually(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The router (DESIGN §10): two routers over two nameservices (one voter and one observer
/// each) and nine blockservers show one tree. Files written through a router land in their
/// nameservice's pool and read back through the other router and directly; a mount added
/// at one nameservice is seen by both routers; calls that would span nameservices are
/// refused and change nothing; a client's state IDs are kept per nameservice, and its msync
/// reaches only the nameservices it has been answered by; deleting in ns1 leaves ns2's
/// blocks alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_show_one_tree_over_two_nameservices() {
    let cluster = LocalCluster::up(
        1,
        &[
            "--nameservices",
            "2",
            "--observers",
            "1",
            "--blockservers",
            "9",
            "--racks",
            "3",
            "--routers",
            "2",
        ],
    );
    let top = cluster.file();
    let routers: Vec<String> = top.routers.iter().map(|r| r.addr.clone()).collect();
    assert_eq!(routers.len(), 2);
    let ns1_dir = PathBuf::from(&top.nameservices[0].dir);
    let ns2_dir = PathBuf::from(&top.nameservices[1].dir);
    let (ns1, ns2) = (client_of(&ns1_dir), client_of(&ns2_dir));
    let r1 = router_client(&routers[0], ReadMode::Active);
    let r2 = router_client(&routers[1], ReadMode::Observer);

    // A mount added through one router is used through the other at once (a miss re-reads
    // the table); one added at the keeping nameservice itself shows within a poll.
    r1.mount_add("/user", "ns1", "/user")
        .await
        .expect("mount /user");
    r2.mkdir("/user/alice", true)
        .await
        .expect("mkdir through router 2");
    ns1.stat("/user/alice").await.expect("made in ns1");
    ns1.mount_add("/logs", "ns2", "/")
        .await
        .expect("mount /logs");
    for r in [&r1, &r2] {
        eventually("the new mount seen", Duration::from_secs(5), async || {
            r.list("/")
                .await
                .is_ok_and(|l| l.iter().any(|e| e.name == "logs"))
        })
        .await;
    }
    // The top directory's tools go through the routers too.
    let out = metactl(&["--cluster", &cluster.dir_arg(), "mount", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("/logs -> ns2:/"));

    let (ec, rep) = (content(6_500_000, 5), content(3 << 20, 6));
    put_file(&r1, "/user/alice/ec", "RS-6-3-1024k", &ec).await;
    put_file(&r1, "/logs/l", "REPLICATED-3", &rep).await;
    // Back through the other router (its reads on observers), and directly.
    assert_eq!(get_file(&r2, "/user/alice/ec").await, ec);
    assert_eq!(get_file(&r2, "/logs/l").await, rep);
    assert_eq!(get_file(&ns1, "/user/alice/ec").await, ec);
    assert_eq!(get_file(&ns2, "/l").await, rep);
    // Each file's blocks are in its nameservice's pool directories.
    assert_eq!(pool_files(&cluster, "ns1").len(), 2 * 9);
    assert_eq!(pool_files(&cluster, "ns2").len(), 2 * 3);

    // One tree: the mount points in `/`, an inode at a mount point named as mounted, paths
    // of a report in the federated tree.
    let names: Vec<String> = r1
        .list("/")
        .await
        .expect("ls /")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["logs", "user"]);
    assert_eq!(r1.stat("/").await.expect("stat /").children, 2);
    // Under a default nameservice, `/` is its root: its `user` (made by the mkdir above) is
    // the mount point's place, counted once.
    r1.set_default_nameservice(Some("ns1"))
        .await
        .expect("default");
    assert_eq!(r1.stat("/").await.expect("stat /").children, 2);
    let names: Vec<String> = r1
        .list("/")
        .await
        .expect("ls /")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["logs", "user"]);
    assert_eq!(r1.stat("/logs").await.expect("stat").name, "logs");
    let report = r1.fsck("/logs", true).await.expect("fsck through a router");
    let paths: Vec<&str> = report.all.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/logs/l"]);

    // State IDs per nameservice; an msync reaches only those the client has been answered by.
    // (`@mount-table`: the newest mount table the client was routed by, no nameservice.)
    let named = |c: &Client| -> Vec<String> {
        c.token()
            .nameservices
            .into_keys()
            .filter(|k| !k.starts_with('@'))
            .collect()
    };
    assert!(r1.token().nameservices.contains_key("@mount-table"));
    assert_eq!(named(&r1), ["ns1", "ns2"]);
    let fresh = router_client(&routers[0], ReadMode::Observer);
    fresh.stat("/user/alice").await.expect("stat");
    fresh.msync().await.expect("msync");
    assert_eq!(
        named(&fresh),
        ["ns1"],
        "msync went to a nameservice the client never used"
    );

    // Calls that would span nameservices are refused before either is asked.
    let refused = r1
        .rename("/user/alice/ec", "/logs/ec", false)
        .await
        .expect_err("crosses");
    assert!(refused.is(ErrorKind::CrossNamespaceRename), "{refused}");
    let refused = r1
        .rename("/user", "/user2", false)
        .await
        .expect_err("a mount point");
    assert!(refused.is(ErrorKind::MountPoint), "{refused}");
    let refused = r1.delete("/logs", true).await.expect_err("a mount point");
    assert!(refused.is(ErrorKind::MountPoint), "{refused}");
    ns1.stat("/user/alice/ec").await.expect("still there");
    assert!(
        ns2.stat("/ec")
            .await
            .expect_err("never made")
            .is(ErrorKind::NotFound)
    );
    assert_eq!(get_file(&r2, "/logs/l").await, rep);

    // Deleting in ns1 through a router: ns1's blocks go, ns2's stay byte for byte.
    let before2 = snapshot(&pool_files(&cluster, "ns2"));
    r1.delete("/user/alice/ec", false).await.expect("delete");
    eventually(
        "ns1's blocks deleted",
        Duration::from_secs(60),
        async || pool_files(&cluster, "ns1").is_empty(),
    )
    .await;
    assert_eq!(snapshot(&pool_files(&cluster, "ns2")), before2);

    // What an operator watches: each router's calls by method and nameservice.
    let metrics = top.routers[0]
        .metrics_addr
        .clone()
        .expect("metrics address");
    let text = http_get(&metrics, "/metrics").expect("router /metrics");
    for want in [
        r#"raftfs_router_rpc_total{method="mutate",nameservice="ns1",outcome="ok"}"#,
        r#"raftfs_router_rpc_total{method="mutate",nameservice="",outcome="error"}"#,
        "raftfs_router_mount_points 2",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
}
