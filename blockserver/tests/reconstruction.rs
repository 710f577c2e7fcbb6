//! Reconstruction tasks on a real blockserver (real gRPC, real disks), handed out by a
//! recording metaserver: a replica copied from another server, and tasks that fail (a dead
//! source, a full disk on the target, a malformed task refused as it arrives): every one
//! reports its outcome and gives its xmits back.

mod common;

use common::{Blockserver, RecordingMeta, bytes, eventually, node_token, read, write};
use raftfs_proto as pb;

fn task(id: u64, group: u64, len: u64, source: &str, weight: u32) -> pb::ReconstructionTask {
    pb::ReconstructionTask {
        task_id: id,
        group,
        policy: "REPLICATED-3".into(),
        group_length: len,
        index: 0,
        sources: vec![pb::BlockLocation {
            index: 0,
            node_id: 9,
            addr: source.to_owned(),
            rack: "r2".into(),
        }],
        weight,
        aggregate: true,
        token: node_token(group),
    }
}

/// Waits for the outcome of task `id`, then until the node reports no xmits in progress.
async fn outcome(meta: &RecordingMeta, id: u64) -> pb::TaskOutcome {
    let o = eventually("the task's outcome", || {
        let o = meta
            .seen()
            .finished
            .iter()
            .find(|o| o.task_id == id)
            .cloned();
        async move { o }
    })
    .await;
    eventually("xmits back at 0", || {
        let idle = meta
            .seen()
            .storage
            .as_ref()
            .is_some_and(|s| s.xmits_in_progress == 0);
        async move { idle.then_some(()) }
    })
    .await;
    o
}

/// Two nameservices' actives may each hand a server `max-streams` tasks in the same second:
/// past the lowest limit an active sent, a task is refused (`busy`), before anything is read
/// or allocated, and the active hears so.
#[tokio::test]
async fn tasks_past_the_limit_the_actives_sent_are_refused_as_busy() {
    let meta = RecordingMeta::default();
    let (maddr, _m) = meta.start().await;
    meta.seen().throttle = Some(pb::Throttle {
        max_tasks: 2,
        ..Default::default()
    });
    let target = Blockserver::start(1, |c| {
        c.id = 1;
        c.metaservers = vec![maddr.clone()];
    })
    .await;
    eventually("registered", || {
        let ok = meta.seen().registered;
        async move { ok.then_some(()) }
    })
    .await;
    // A source that accepts and never answers: the first tasks run (waiting on it) while the
    // third arrives.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let source = silent.local_addr().expect("addr").to_string();
    for id in 1..=3u64 {
        meta.queue_task(task(id, id << 20, 1 << 20, &source, 1));
    }
    let refused = eventually("the third task's outcome", || {
        let o = meta
            .seen()
            .finished
            .iter()
            .find(|o| o.task_id == 3)
            .cloned();
        async move { o }
    })
    .await;
    assert!(
        !refused.ok && refused.error.starts_with("busy"),
        "{refused:?}"
    );
    assert!(target.block_file(3 << 20, 0).is_none());
    let running = meta
        .seen()
        .finished
        .iter()
        .filter(|o| o.task_id < 3)
        .count();
    assert_eq!(running, 0, "the first two are still running");
    drop(silent);
}

#[tokio::test]
async fn tasks_copy_replicas_and_failures_give_their_weight_back() {
    let meta = RecordingMeta::default();
    let (maddr, _m) = meta.start().await;
    let source = Blockserver::start(1, |c| c.id = 9).await;
    let data = bytes(3 << 20, 5);
    write(&mut source.client().await, 1 << 20, 0, &data, 1 << 20)
        .await
        .expect("write source block");
    let target = Blockserver::start(1, |c| {
        c.id = 1;
        c.metaservers = vec![maddr.clone()];
    })
    .await;
    eventually("registered", || {
        let ok = meta.seen().registered;
        async move { ok.then_some(()) }
    })
    .await;

    // A replica copy: the new block is there, byte for byte, and reported.
    meta.queue_task(task(
        1,
        1 << 20,
        data.len() as u64,
        &source.addr.to_string(),
        1,
    ));
    let o = outcome(&meta, 1).await;
    assert!(o.ok, "{o:?}");
    assert_eq!(
        read(&mut target.client().await, 1 << 20, 0, 0, 0)
            .await
            .expect("read copy"),
        data
    );
    eventually("the copy reported", || {
        let ok = meta.seen().blocks.get(&(1 << 20, 0)) == Some(&(data.len() as u64));
        async move { ok.then_some(()) }
    })
    .await;

    // A source that is gone: the task fails, its weight (3) is given back.
    meta.queue_task(task(2, 2 << 20, 1 << 20, "127.0.0.1:1", 3));
    let o = outcome(&meta, 2).await;
    assert!(!o.ok);

    // A full target disk.
    target.stop().await;
    let full = Blockserver::start(1, |c| {
        c.id = 1;
        c.metaservers = vec![maddr.clone()];
        c.reserved_bytes = u64::MAX / 2;
    })
    .await;
    meta.queue_task(task(
        3,
        1 << 20,
        data.len() as u64,
        &source.addr.to_string(),
        1,
    ));
    let o = outcome(&meta, 3).await;
    assert!(!o.ok, "{o:?}");
    assert!(o.error.to_lowercase().contains("space"), "{o:?}");
    assert!(
        full.block_file(1 << 20, 0).is_none(),
        "nothing visible on the full disk"
    );
    assert!(full.temporaries().is_empty(), "no temporary left behind");
}

#[tokio::test]
async fn malformed_tasks_are_refused_and_reported_failed() {
    let meta = RecordingMeta::default();
    let (maddr, _m) = meta.start().await;
    let target = Blockserver::start(1, |c| {
        c.id = 1;
        c.metaservers = vec![maddr.clone()];
    })
    .await;
    eventually("registered", || {
        let ok = meta.seen().registered;
        async move { ok.then_some(()) }
    })
    .await;
    // A policy past the caps, a group longer than a block may be, a lost block outside the
    // group, an erasure-coded task short of k sources: each refused before anything is read
    // or allocated, reported failed, its weight never taken.
    let mut past_caps = task(1, 1 << 20, 1 << 20, "127.0.0.1:1", 3);
    past_caps.policy = "RS-300-3-1024k".into();
    let too_long = task(2, 2 << 20, u64::MAX, "127.0.0.1:1", 1);
    let mut outside = task(3, 3 << 20, 1 << 20, "127.0.0.1:1", 1);
    outside.index = 70_000;
    let mut short_of_k = task(4, 4 << 20, 1 << 20, "127.0.0.1:1", 1);
    short_of_k.policy = "RS-6-3-1024k".into();
    short_of_k.index = 8;
    for t in [past_caps, too_long, outside, short_of_k] {
        meta.queue_task(t);
    }
    for id in 1..=4 {
        let o = outcome(&meta, id).await;
        assert!(!o.ok && o.error.starts_with("bad task"), "{o:?}");
    }
    for group in 1..=4u64 {
        assert!(target.block_file(group << 20, 0).is_none());
    }
    assert!(target.temporaries().is_empty());

    // A peer's partial request is validated the same way, and refused as the caller's fault.
    let partial = pb::PartialRequest {
        group: 1 << 20,
        policy: "RS-3-2-1024k".into(),
        group_length: 3 << 20,
        lost: 0,
        offset: 0,
        all: vec![1, 2, 2],
        local: Vec::new(),
        token: node_token(1 << 20),
    };
    let e = target
        .client()
        .await
        .partial(partial)
        .await
        .expect_err("refused");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("named twice"), "{e:?}");
    // Issue 17's crash: 41 bytes asking for a terabyte of cells. Refused by the policy caps
    // before anything is allocated; the server answers the next request.
    let huge = pb::PartialRequest {
        group: 1,
        policy: "RS-1-1-1073741824k".into(),
        group_length: 1 << 41,
        lost: 1,
        offset: 0,
        all: vec![0],
        local: Vec::new(),
        token: node_token(1),
    };
    let e = target
        .client()
        .await
        .partial(huge)
        .await
        .expect_err("refused");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    target
        .client()
        .await
        .block_info(pb::BlockInfoRequest {
            block: Some(pb::BlockRef { group: 1, index: 0 }),
            token: node_token(1),
        })
        .await
        .expect_err("no such block, but an answer");
}
