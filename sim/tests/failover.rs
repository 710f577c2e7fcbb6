//! `metactl/tests/failover.rs`'s first three tests on the in-process cluster: the same
//! workloads and checks, with the members as [`raftfs_sim::Cluster`] members instead of
//! processes (a stop instead of `kill -9`: what a member acknowledged is in its synced log
//! either way). Plus what only the in-process network makes easy: a partitioned active, and a
//! network that drops, delays, reorders and duplicates messages.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use raftfs_metaserver::journal::MemberId;
use raftfs_metaserver::namespace::NsPath;
use raftfs_metaserver::namespace::tree;
use raftfs_proto as pb;
use raftfs_proto::namespace_server::Namespace;
use raftfs_sim::{Cluster, Fault, Filter, SimClient};

const ELECTION: Duration = Duration::from_secs(10);

async fn cluster(voters: u64, tune: impl Fn(&mut raftfs_metaserver::Config)) -> Cluster {
    Cluster::start(voters, 1, tune).await.expect("cluster")
}

/// What member `id` has applied (0 when it is down).
fn applied(cluster: &Cluster, id: MemberId) -> u64 {
    cluster
        .node(id)
        .and_then(|n| n.raft().metrics().borrow().last_applied)
        .map_or(0, |l| l.index)
}

/// Waits until member `id` applied `index`.
async fn wait_applied(cluster: &Cluster, id: MemberId, index: u64, within: Duration) {
    let start = Instant::now();
    loop {
        let applied = applied(cluster, id);
        if applied >= index {
            return;
        }
        assert!(
            start.elapsed() < within,
            "member {id} applied {applied} < {index}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Member `id` stopped, and its own state machine opened from its data directory.
async fn stopped_state(
    cluster: &mut Cluster,
    id: MemberId,
) -> raftfs_metaserver::journal::state_machine::StateMachine {
    cluster.stop_member(id).await.expect("stop");
    let dir = cluster.config(id).expect("config").data_dir.clone();
    raftfs_metaserver::journal::state_machine::StateMachine::open(&dir, Default::default())
        .expect("open the stopped member's state machine")
}

/// One `Mutate(create)` with a fixed client id and call id, sent to exactly member `id`.
async fn raw_create(
    cluster: &Cluster,
    id: MemberId,
    path: &str,
) -> Result<pb::MutateResponse, tonic::Status> {
    let node = cluster.node(id).expect("member up").clone();
    let req = raftfs_sim::cluster::as_process_user(pb::MutateRequest {
        header: Some(pb::RequestHeader {
            client_id: vec![42; 16],
            call_id: 7,
            ..Default::default()
        }),
        op: Some(pb::mutate_request::Op::Create(pb::CreateOp {
            path: path.into(),
            lease_holder: "retrying-writer".into(),
            ..Default::default()
        })),
    });
    raftfs_metaserver::service::namespace::NamespaceService::new(node)
        .mutate(req)
        .await
        .map(tonic::Response::into_inner)
}

/// Writers that create files until told to stop; what each had acknowledged, and errors.
fn writers(
    client: &SimClient,
    n: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Vec<String>, Vec<String>)>> {
    (0..n)
        .map(|w| {
            let (c, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut acked, mut errors) = (Vec::new(), Vec::new());
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let p = format!("/w/{w}-{i}");
                    match c.create(&p).await {
                        Ok(_) => acked.push(p),
                        Err(e) => errors.push(format!("{p}: {e}")),
                    }
                    i += 1;
                }
                (acked, errors)
            })
        })
        .collect()
}

async fn all_present(
    client: &SimClient,
    writers: Vec<tokio::task::JoinHandle<(Vec<String>, Vec<String>)>>,
) -> usize {
    let mut acked = Vec::new();
    for w in writers {
        let (a, errors) = w.await.expect("writer");
        assert!(errors.is_empty(), "writes failed: {errors:?}");
        acked.extend(a);
    }
    let listed: BTreeSet<String> = client
        .list("/w")
        .await
        .expect("list")
        .into_iter()
        .map(|n| format!("/w/{n}"))
        .collect();
    for p in &acked {
        assert!(listed.contains(p), "acknowledged {p} is missing");
    }
    acked.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_active_loses_no_acknowledged_write() {
    let mut cluster = cluster(3, |_| {}).await;
    let client = cluster.client();
    client.mkdir("/w").await.expect("mkdir");
    let stop = Arc::new(AtomicBool::new(false));
    let writers = writers(&client, 8, &stop);
    tokio::time::sleep(Duration::from_millis(800)).await;

    let leader = cluster.active(ELECTION).await.expect("active");
    let first = raw_create(&cluster, leader, "/w/retried")
        .await
        .expect("first attempt");
    let first_inode = first.inode.expect("inode").id;

    cluster.stop_member(leader).await.expect("stop");
    let stopped_at = Instant::now();
    client
        .mkdir("/w-after-failover")
        .await
        .expect("a write after failover");
    eprintln!(
        "failover: a new active served a write {} ms after the active stopped",
        stopped_at.elapsed().as_millis()
    );

    // The same call (same client id and call id) retried at the new active: its first result.
    let new = cluster.active(ELECTION).await.expect("new active");
    assert_ne!(new, leader);
    let retried = raw_create(&cluster, new, "/w/retried")
        .await
        .expect("retry");
    assert_eq!(
        retried.inode.expect("inode").id,
        first_inode,
        "a retried create applies once"
    );

    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = all_present(&client, writers).await;
    assert!(acked > 50, "only {acked} writes acknowledged");
    eprintln!("{acked} acknowledged creates, all present after failover");

    // The stopped member comes back and catches up.
    cluster.start_member(leader).await.expect("restart");
    let target = applied(&cluster, new);
    wait_applied(&cluster, leader, target, Duration::from_secs(60)).await;
    let state = cluster
        .node(leader)
        .expect("up")
        .raft()
        .metrics()
        .borrow()
        .state;
    assert_eq!(state, openraft::ServerState::Follower);
}

/// A lone voter stopped cleanly and started again is the active at once, in the same term
/// and with nothing to commit (openraft 0.9 restores a leader that way): it serves reads
/// before any write. Its read index once waited for a commit of the term, which never came
/// while nobody wrote (a CI failure of `metactl/tests/migration.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_lone_active_serves_reads_before_any_write() {
    let mut cluster = cluster(1, |_| {}).await;
    let client = cluster.client();
    client.mkdir("/r/a").await.expect("mkdir");
    let id = cluster.active(ELECTION).await.expect("active");
    let log_end = |cluster: &Cluster| {
        let m = cluster
            .node(id)
            .expect("up")
            .raft()
            .metrics()
            .borrow()
            .clone();
        (m.current_term, m.last_log_index.unwrap_or(0))
    };
    // Stopped once its start-up writes (the first block key) are in: after the restart
    // nothing is left to commit.
    let mut quiet = (log_end(&cluster), Instant::now());
    while quiet.1.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if log_end(&cluster) != quiet.0 {
            quiet = (log_end(&cluster), Instant::now());
        }
    }
    cluster.stop_member(id).await.expect("stop");
    cluster.start_member(id).await.expect("restart");
    cluster.active(ELECTION).await.expect("active again");
    assert_eq!(
        log_end(&cluster),
        quiet.0,
        "restored in its term, nothing new"
    );
    let started = Instant::now();
    assert_eq!(client.list("/r").await.expect("a read"), ["a"]);
    eprintln!(
        "the first read after the restart took {} ms",
        started.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_far_behind_catches_up_through_a_snapshot() {
    const FILES: u64 = 100_000;
    const DIRS: u64 = 100;
    // As `metactl local --snapshot-every 2000` sets it.
    let mut cluster = cluster(3, |c| {
        c.raft.snapshot_every_entries = 2000;
        c.raft.keep_entries_behind_snapshot = 200;
    })
    .await;
    let client = cluster.client();
    let leader = cluster.active(ELECTION).await.expect("active");
    let behind = cluster
        .ids()
        .into_iter()
        .find(|i| *i != leader)
        .expect("a follower");
    let before = applied(&cluster, behind);
    cluster.stop_member(behind).await.expect("stop");

    for d in 0..DIRS {
        client.mkdir(&format!("/s/d{d}")).await.expect("mkdir");
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < FILES {
                c.create(&format!("/s/d{}/f{i}", i % DIRS))
                    .await
                    .expect("create");
                i += 64;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let leader = cluster.active(ELECTION).await.expect("active");
    let m = cluster
        .node(leader)
        .expect("up")
        .raft()
        .metrics()
        .borrow()
        .clone();
    let purged = m.purged.map_or(0, |l| l.index);
    let target = m.last_applied.map_or(0, |l| l.index);
    eprintln!(
        "wrote {FILES} creates in {:.1} s; the active purged its log up to {purged}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        purged > before,
        "the log the lagging member needs must be gone"
    );

    cluster.start_member(behind).await.expect("restart");
    wait_applied(&cluster, behind, target, Duration::from_secs(120)).await;
    let installed = cluster
        .node(behind)
        .expect("up")
        .state_machine()
        .snapshots_installed();
    assert!(
        installed >= 1,
        "the member must have caught up through a snapshot"
    );

    // Its own state, read from its own RocksDB after a clean stop, holds every file.
    let sm = stopped_state(&mut cluster, behind).await;
    let db = sm.shared().db();
    let mut count = 0u64;
    for d in 0..DIRS {
        let path = NsPath::parse(&format!("/s/d{d}")).expect("path");
        let dir = tree::stat(&raftfs_metaserver::journal::rocks::LiveKv(&db), &path)
            .expect("dir on the caught-up member");
        count += dir.children;
    }
    assert_eq!(count, FILES);
}

/// Issue #15's catch-up from the log after batches of 512 concurrent 16 KiB xattr writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_stopped_during_large_xattr_batches_catches_up() {
    const FILES: usize = 512;
    const VALUE: usize = 16 * 1024;
    const BATCHES: usize = 20;
    let mut cluster = cluster(3, |_| {}).await;
    let client = cluster.client();
    client.mkdir("/x").await.expect("mkdir");
    for f in 0..FILES {
        client.create(&format!("/x/f{f}")).await.expect("create");
    }
    let leader = cluster.active(ELECTION).await.expect("active");
    let behind = cluster
        .ids()
        .into_iter()
        .find(|i| *i != leader)
        .expect("a follower");
    cluster.stop_member(behind).await.expect("stop");
    let value = |batch: usize, f: usize| -> Vec<u8> {
        let mut v = vec![(batch % 251) as u8; VALUE];
        v[..8].copy_from_slice(&(f as u64).to_be_bytes());
        v
    };
    for batch in 0..BATCHES {
        let mut writes = Vec::with_capacity(FILES);
        for f in 0..FILES {
            let (c, v) = (client.clone(), value(batch, f));
            writes.push(tokio::spawn(async move {
                c.set_xattr(&format!("/x/f{f}"), "user.v", &v).await
            }));
        }
        for w in writes {
            w.await.expect("writer").expect("set_xattr");
        }
    }
    let target = applied(&cluster, leader);
    cluster.start_member(behind).await.expect("restart");
    wait_applied(&cluster, behind, target, Duration::from_secs(120)).await;

    let sm = stopped_state(&mut cluster, behind).await;
    let db = sm.shared().db();
    let kv = raftfs_metaserver::journal::rocks::LiveKv(&db);
    for f in 0..FILES {
        let path = NsPath::parse(&format!("/x/f{f}")).expect("path");
        let got = tree::get_xattrs(&kv, &path, &["user.v".into()]).expect("xattrs");
        assert_eq!(
            got,
            [("user.v".to_owned(), value(BATCHES - 1, f))],
            "/x/f{f}"
        );
    }
}

/// An active cut off from both followers is replaced; the writes acknowledged on either side
/// of the partition are all there after it heals, and the old active follows the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_active_is_replaced_and_rejoins() {
    let cluster = cluster(3, |_| {}).await;
    let client = cluster.client();
    client.mkdir("/w").await.expect("mkdir");
    let old = cluster.active(ELECTION).await.expect("active");
    let stop = Arc::new(AtomicBool::new(false));
    let writers = writers(&client, 4, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;

    cluster.net().isolate(old, &cluster.ids());
    let start = Instant::now();
    let new = loop {
        let ids: Vec<MemberId> = cluster.ids().into_iter().filter(|i| *i != old).collect();
        let leaders: BTreeSet<Option<MemberId>> = ids
            .iter()
            .map(|i| {
                cluster
                    .node(*i)
                    .and_then(|n| n.raft().metrics().borrow().current_leader)
            })
            .collect();
        if let [Some(l)] = leaders.into_iter().collect::<Vec<_>>()[..]
            && l != old
        {
            break l;
        }
        assert!(
            start.elapsed() < ELECTION,
            "no new active on the majority side"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "member {new} took over {} ms after the partition",
        start.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.net().heal();
    stop.store(true, Ordering::Relaxed);
    let acked = all_present(&client, writers).await;
    assert!(acked > 20, "only {acked} writes acknowledged");
    let target = applied(&cluster, new);
    wait_applied(&cluster, old, target, Duration::from_secs(30)).await;
    let m = cluster
        .node(old)
        .expect("up")
        .raft()
        .metrics()
        .borrow()
        .clone();
    assert_eq!(
        m.current_leader,
        Some(new),
        "the old active follows the new one"
    );
    assert!(
        cluster.net().counts().refused > 0,
        "the partition refused messages"
    );
}

/// A network that drops 5% of the messages (and of the replies), delays them by up to 20 ms
/// (reordering them) and delivers 5% twice loses no acknowledged write, and the members agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_slow_duplicating_network_loses_nothing() {
    let cluster = cluster(3, |_| {}).await;
    let client = cluster.client();
    client.mkdir("/w").await.expect("mkdir");
    let net = cluster.net();
    net.add(Filter::everywhere(Fault::Drop(0.05)));
    net.add(Filter::everywhere(Fault::Delay(
        Duration::ZERO,
        Duration::from_millis(20),
    )));
    net.add(Filter::everywhere(Fault::Duplicate(0.05)));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = writers(&client, 4, &stop);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = all_present(&client, writers).await;
    net.heal();
    let leader = cluster.active(ELECTION).await.expect("active");
    let target = applied(&cluster, leader);
    for id in cluster.ids() {
        wait_applied(&cluster, id, target, Duration::from_secs(30)).await;
    }
    let counts = net.counts();
    eprintln!("{acked} acknowledged creates through {counts:?}");
    assert!(acked > 20, "only {acked} writes acknowledged");
    assert!(
        counts.dropped > 0 && counts.delayed > 0 && counts.duplicated > 0,
        "{counts:?}"
    );
}
