//! Failover and catch-up with real processes: `kill -9` of the active under write load loses
//! no acknowledged write; a create retried across the failover applies once; the killed node
//! restarts and catches up; a node that was down while 100,000 mutations were written catches
//! up through a snapshot (the log it missed has been purged).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::LocalCluster;
use raftfs_client::{Client, CreateOptions, ErrorKind};
use raftfs_proto as pb;
use raftfs_proto::namespace_client::NamespaceClient;

async fn wait_caught_up(
    client: &Client,
    addr: &str,
    target: u64,
    within: Duration,
) -> raftfs_client::NodeStatus {
    let start = Instant::now();
    loop {
        if let Ok(s) = client.node_status(addr).await
            && s.applied_index >= target
        {
            return s;
        }
        assert!(
            start.elapsed() < within,
            "{addr} did not reach index {target} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Member `id` stopped cleanly, and its own state machine opened from its data directory.
fn stopped_state(
    cluster: &LocalCluster,
    id: u64,
) -> raftfs_metaserver::journal::state_machine::StateMachine {
    cluster.stop(id);
    raftfs_metaserver::journal::state_machine::StateMachine::open(
        &cluster.data_dir_of(id),
        Default::default(),
    )
    .expect("open the stopped member's state machine")
}

/// One `Mutate(create)` with a fixed client id and call id, sent to exactly `addr`.
async fn raw_create(addr: &str, path: &str) -> Result<pb::MutateResponse, tonic::Status> {
    let create = pb::mutate_request::Op::Create(pb::CreateOp {
        path: path.into(),
        lease_holder: "retrying-writer".into(),
        ..Default::default()
    });
    raw_mutate(addr, [42; 16], 7, create).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_active_loses_no_acknowledged_write() {
    let cluster = LocalCluster::up(3, &[]);
    let client = cluster.client();
    client.mkdir("/w", false).await.expect("mkdir");

    // Writers that keep creating files and remember what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let c = cluster.client();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut errors = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let p = format!("/w/{w}-{i}");
                match c.create(&p, &CreateOptions::default()).await {
                    Ok(_) => acked.push(p),
                    Err(e) => errors.push(format!("{p}: {e}")),
                }
                i += 1;
            }
            (acked, errors)
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    let leader = client.cluster_status().await.expect("status").leader.get();
    let first = raw_create(&cluster.addr_of(leader), "/w/retried")
        .await
        .expect("first attempt");
    let first_inode = first.inode.expect("inode").id;

    cluster.kill(leader);
    let killed_at = Instant::now();
    let probe = cluster.client();
    probe
        .mkdir("/w-after-failover", false)
        .await
        .expect("a write after failover");
    let failover = killed_at.elapsed();
    eprintln!(
        "failover: a new active served a write {} ms after kill -9 of the active",
        failover.as_millis()
    );

    // The same call (same client id and call id) retried at the new active: its first result.
    let mut retried = None;
    for id in (1..=3).filter(|i| *i != leader) {
        match raw_create(&cluster.addr_of(id), "/w/retried").await {
            Ok(r) => retried = Some(r),
            Err(s) => {
                let kind = pb::detail_of(&s).and_then(|d| ErrorKind::try_from(d.kind).ok());
                assert_eq!(
                    kind,
                    Some(ErrorKind::NotActive),
                    "unexpected answer from node {id}: {s}"
                );
            }
        }
    }
    let retried = retried.expect("the new active answered the retry");
    assert_eq!(
        retried.inode.expect("inode").id,
        first_inode,
        "a retried create applies once"
    );

    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        let (a, errors) = w.await.expect("writer");
        assert!(
            errors.is_empty(),
            "writes failed across the failover: {errors:?}"
        );
        acked.extend(a);
    }
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());
    let listed: std::collections::BTreeSet<String> = client
        .list("/w")
        .await
        .expect("list")
        .into_iter()
        .map(|f| format!("/w/{}", f.name))
        .collect();
    for p in &acked {
        assert!(
            listed.contains(p),
            "acknowledged {p} is missing after failover"
        );
    }
    eprintln!(
        "{} acknowledged creates, all present after failover",
        acked.len()
    );

    // The killed node comes back and catches up.
    cluster.start(leader);
    let target = client
        .cluster_status()
        .await
        .expect("status")
        .committed_index;
    let s = wait_caught_up(
        &client,
        &cluster.addr_of(leader),
        target,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(s.state, "follower");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_far_behind_catches_up_through_a_snapshot() {
    const FILES: u64 = 100_000;
    const DIRS: u64 = 100;
    let cluster = LocalCluster::up(3, &["--snapshot-every", "2000"]);
    let client = cluster.client();
    let leader = client.cluster_status().await.expect("status").leader.get();
    let behind = (1..=3).find(|i| *i != leader).expect("a follower");
    let behind_addr = cluster.addr_of(behind);
    let before = client.node_status(&behind_addr).await.expect("status");
    cluster.kill(behind);

    for d in 0..DIRS {
        client
            .mkdir(&format!("/s/d{d}"), true)
            .await
            .expect("mkdir");
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < FILES {
                c.create(&format!("/s/d{}/f{i}", i % DIRS), &CreateOptions::default())
                    .await
                    .expect("create");
                i += 64;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let leader_addr = cluster.addr_of(client.cluster_status().await.expect("status").leader.get());
    let ls = client
        .node_status(&leader_addr)
        .await
        .expect("leader status");
    eprintln!(
        "wrote {FILES} creates in {:.1} s as {} log entries; leader purged its log up to {}",
        started.elapsed().as_secs_f64(),
        ls.last_log_index - before.last_log_index,
        ls.purged_index
    );
    assert!(
        ls.purged_index > before.last_log_index,
        "the log the lagging node needs must be gone"
    );

    cluster.start(behind);
    let caught = wait_caught_up(
        &client,
        &behind_addr,
        ls.applied_index,
        Duration::from_secs(120),
    )
    .await;
    assert!(
        caught.snapshots_installed >= 1,
        "the node must have caught up through a snapshot: {caught:?}"
    );

    // Its own state, read from its own RocksDB after a clean stop, holds every file.
    let sm = stopped_state(&cluster, behind);
    let db = sm.shared().db();
    let mut count = 0u64;
    for d in 0..DIRS {
        let path = raftfs_metaserver::namespace::NsPath::parse(&format!("/s/d{d}")).expect("path");
        let dir = raftfs_metaserver::namespace::tree::stat(
            &raftfs_metaserver::journal::rocks::LiveKv(&db),
            &path,
        )
        .expect("dir on the caught-up node");
        count += dir.children;
    }
    assert_eq!(count, FILES);
}

/// Issue #15: a follower stopped while batches of 512 concurrent 16 KiB xattr writes are
/// journaled (each batch about 8 MiB; the proposer packs at most `max-batch-bytes` into an
/// entry, so no AppendEntries outgrows the Raft message limit) catches up from the log after
/// its restart, and its own RocksDB holds the last value of every attribute. 20 batches
/// here; `bench/catch-up.sh` runs the 300 (`RAFTFS_CATCHUP_BATCHES`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_stopped_during_large_xattr_batches_catches_up() {
    const FILES: usize = 512;
    const VALUE: usize = 16 * 1024;
    let batches: usize = std::env::var("RAFTFS_CATCHUP_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let cluster = LocalCluster::up(3, &[]);
    let client = cluster.client();
    for f in 0..FILES {
        client
            .create(
                &format!("/x/f{f}"),
                &CreateOptions {
                    create_parents: true,
                    ..CreateOptions::default()
                },
            )
            .await
            .expect("create");
    }
    let leader = client.cluster_status().await.expect("status").leader.get();
    let behind = (1..=3).find(|i| *i != leader).expect("a follower");
    let behind_addr = cluster.addr_of(behind);
    cluster.kill(behind);

    let value = |batch: usize, f: usize| -> Vec<u8> {
        let mut v = vec![(batch % 251) as u8; VALUE];
        v[..8].copy_from_slice(&(f as u64).to_be_bytes());
        v
    };
    let started = Instant::now();
    for batch in 0..batches {
        let mut writes = Vec::with_capacity(FILES);
        for f in 0..FILES {
            let c = client.clone();
            let v = value(batch, f);
            writes.push(tokio::spawn(async move {
                c.set_xattr(&format!("/x/f{f}"), "user.v", &v, None).await
            }));
        }
        for w in writes {
            if let Err(e) = w.await.expect("writer") {
                panic!(
                    "set_xattr in batch {batch}: {e}\n{}",
                    LocalCluster::logs(cluster.path())
                );
            }
        }
    }
    let leader_addr = cluster.addr_of(leader);
    let ls = client
        .node_status(&leader_addr)
        .await
        .expect("leader status");
    eprintln!(
        "{batches} batches of {FILES} x {VALUE} B xattrs in {:.1} s; the leader's log reaches {}",
        started.elapsed().as_secs_f64(),
        ls.last_log_index
    );

    let restarted = Instant::now();
    cluster.start(behind);
    let caught = wait_caught_up(
        &client,
        &behind_addr,
        ls.applied_index,
        Duration::from_secs(120.max(2 * batches as u64)),
    )
    .await;
    eprintln!(
        "the follower caught up {} entries in {:.1} s (snapshots installed: {})",
        ls.applied_index,
        restarted.elapsed().as_secs_f64(),
        caught.snapshots_installed
    );

    let sm = stopped_state(&cluster, behind);
    let db = sm.shared().db();
    let kv = raftfs_metaserver::journal::rocks::LiveKv(&db);
    for f in 0..FILES {
        let path = raftfs_metaserver::namespace::NsPath::parse(&format!("/x/f{f}")).expect("path");
        let got = raftfs_metaserver::namespace::tree::get_xattrs(&kv, &path, &["user.v".into()])
            .expect("xattrs on the caught-up node");
        assert_eq!(
            got,
            [("user.v".to_owned(), value(batches - 1, f))],
            "/x/f{f}"
        );
    }
}

/// Issue #16: a `TimeoutNow` that does not come from the active this voter follows, or names
/// a term it has not reached, is refused and starts no election (before, `{term: 0, last_log_index: 0}` from
/// anyone forced one); the active's own transfer still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_timeout_now_starts_no_election() {
    let cluster = LocalCluster::up(3, &["--observers", "0"]);
    let client = cluster.client();
    let before = client.cluster_status().await.expect("status");
    let leader = before.leader.get();
    let target = (1..=3).find(|i| *i != leader).expect("a follower");
    let other = (1..=3)
        .find(|i| *i != leader && *i != target)
        .expect("another follower");
    let mut raft = raftfs_proto::raft_client::RaftClient::connect(format!(
        "http://{}",
        cluster.addr_of(target)
    ))
    .await
    .expect("connect");
    let forged = [
        (0, 0, 0),
        (before.term, 0, 0),
        (before.term, 0, other),
        (before.term + 1, 0, leader),
    ];
    for (term, last_log_index, from) in forged {
        let refused = raft
            .timeout_now(pb::TimeoutNowRequest {
                term,
                last_log_index,
                leader: from,
            })
            .await;
        assert!(
            refused.is_err(),
            "TimeoutNow{{term {term}, index {last_log_index}, leader {from}}} was accepted"
        );
    }
    // An election would have ended within an election timeout or two.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = client.cluster_status().await.expect("status");
    assert_eq!(
        (after.leader.get(), after.term),
        (leader, before.term),
        "a forged TimeoutNow changed the active or the term"
    );
    client
        .transfer_leader(raftfs_core::id::MemberId(target))
        .await
        .expect("the active's own transfer");
    let moved = client.cluster_status().await.expect("status");
    assert_eq!(moved.leader.get(), target);
}

/// One `Mutate` of `op` under a fixed client id and call id, sent to the active.
async fn raw_mutate(
    addr: &str,
    client_id: [u8; 16],
    call_id: u64,
    op: pb::mutate_request::Op,
) -> Result<pb::MutateResponse, tonic::Status> {
    let mut c = NamespaceClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let req = pb::MutateRequest {
        header: Some(pb::RequestHeader {
            client_id: client_id.to_vec(),
            call_id,
            last_seen_state_id: 0,
            observer_read: false,
            state_ids: Default::default(),
        }),
        op: Some(op),
    };
    // Simple mode: the call claims the superuser's name, as the cluster's own tools do.
    let mut req = tonic::Request::new(req);
    let me = raftfs_runtime::process_user()
        .parse()
        .map_err(|_| tonic::Status::internal("user name"))?;
    req.metadata_mut()
        .insert(raftfs_core::identity::CLAIMED_USER_HEADER, me);
    c.mutate(req).await.map(tonic::Response::into_inner)
}

/// Issue #16: the retry-cache poisoning sequence. Another client records a mkdir under the
/// victim's next call id; the victim's rename under that call id is refused
/// (`RetryMismatch`) and the tree is as before, never answered with the mkdir's success.
/// A true retry (the same operation) is still answered from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_id_poisoned_with_another_operation_is_refused() {
    let cluster = LocalCluster::up(3, &["--observers", "0"]);
    let client = cluster.client();
    client.mkdir("/victim/src", true).await.expect("mkdir");
    let active = cluster.addr_of(client.cluster_status().await.expect("status").leader.get());
    let victim = [0x5A; 16];
    let mkdir = pb::mutate_request::Op::Mkdir(pb::MkdirOp {
        path: "/planted".into(),
        parents: true,
        ..Default::default()
    });
    raw_mutate(&active, victim, 41, mkdir.clone())
        .await
        .expect("the attacker's mkdir under the victim's call id");
    let rename = pb::mutate_request::Op::Rename(pb::RenameOp {
        src: "/victim/src".into(),
        dst: "/victim/dst".into(),
        overwrite: false,
    });
    let refused = raw_mutate(&active, victim, 41, rename)
        .await
        .expect_err("a rename answered with the mkdir's result");
    let detail = raftfs_proto::detail_of(&refused).expect("error detail");
    assert_eq!(
        detail.kind,
        pb::ErrorKind::RetryMismatch as i32,
        "{refused:?}"
    );
    assert!(client.stat("/victim/src").await.is_ok(), "the rename ran");
    assert!(client.stat("/victim/dst").await.is_err(), "the rename ran");
    // The mkdir retried as itself gets its first result (not AlreadyExists).
    raw_mutate(&active, victim, 41, mkdir)
        .await
        .expect("a true retry is answered from the cache");
}
