//! Registration, heartbeats and block reports against a recording metaserver over real gRPC:
//! what a metaserver knows of the node follows what the node holds.

mod common;

use std::collections::BTreeMap;

use common::{Blockserver, RecordingMeta, bytes, eventually, info, kind, write};
use raftfs_proto as pb;

/// Waits until the metaserver's block set is `want`.
async fn knows(meta: &RecordingMeta, want: &BTreeMap<(u64, u32), u64>, what: &str) {
    eventually(what, || {
        let same = meta.seen().blocks == *want;
        async move { same.then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn registration_reports_and_heartbeats_keep_every_metaserver_up_to_date() {
    let (m1, m2) = (RecordingMeta::default(), RecordingMeta::default());
    let (a1, _s1) = m1.start().await;
    let (a2, _s2) = m2.start().await;
    let server = Blockserver::start(2, |c| {
        c.id = 7;
        c.rack = "r3".into();
        c.metaservers = vec![a1.clone(), a2.clone()];
    })
    .await;
    for m in [&m1, &m2] {
        eventually("registered, fully reported, heartbeating", || {
            let s = m.seen();
            let ok = s.registered && s.full_reports_completed >= 1 && s.heartbeats >= 2;
            async move { ok.then_some(()) }
        })
        .await;
        let s = m.seen();
        assert_eq!(s.rack, "r3");
        assert_eq!(s.addr, server.addr.to_string());
        let st = s.storage.expect("storage");
        assert_eq!(
            (st.volumes, st.failed_volumes, st.xmits_in_progress),
            (2, 0, 0)
        );
        assert!(st.capacity > 0 && st.available > 0);
    }

    // New blocks reach every metaserver without waiting for a full report.
    let mut c = server.client().await;
    let mut want = BTreeMap::new();
    for g in 1..=5u64 {
        let len = write(&mut c, g, (g % 3) as u32, &bytes(1000 * g as usize, 1), 700)
            .await
            .expect("write");
        want.insert((g, (g % 3) as u32), len);
    }
    for m in [&m1, &m2] {
        knows(m, &want, "incremental reports of the new blocks").await;
        assert!(m.seen().incremental_reports >= 1);
        assert_eq!(
            m.seen().full_reports_completed,
            1,
            "no full report was needed"
        );
    }
    eventually("used space counts the blocks", || {
        let used = m1.seen().storage.map(|s| s.used);
        async move { (used == Some(15_000)).then_some(()) }
    })
    .await;

    // A metaserver orders a deletion: the block goes, and every metaserver hears of it.
    m1.queue_delete(2, 2);
    want.remove(&(2, 2));
    for m in [&m1, &m2] {
        knows(m, &want, "the deletion reported removed").await;
    }
    let gone = info(&mut c, 2, 2).await.expect_err("deleted");
    assert_eq!(kind(&gone), pb::ErrorKind::BlockNotFound);

    // A metaserver restarts and forgets the node: it registers again and reports in full.
    let before = m2.seen().registrations;
    m2.forget();
    knows(&m2, &want, "a full report after registering again").await;
    assert!(m2.seen().registrations > before);
    assert!(m2.seen().full_reports_completed >= 2);
    server.stop().await;
}

#[tokio::test]
async fn a_large_full_report_goes_in_parts_of_one_report_id() {
    // Blocks written before the metaserver is known: the first full report carries them.
    let server = Blockserver::start(1, |c| c.report_split_blocks = 3).await;
    let mut c = server.client().await;
    let mut want = BTreeMap::new();
    for g in 0..8u64 {
        write(&mut c, g, 0, &bytes(10, 2), 10).await.expect("write");
        want.insert((g, 0), 10);
    }
    let meta = RecordingMeta::default();
    let (addr, _stop) = meta.start().await;
    // The same volumes, now reporting to the metaserver.
    let server = server.restart(|c| c.metaservers = vec![addr]).await;
    knows(&meta, &want, "the full report assembled").await;
    let parts = meta.seen().full_parts.clone();
    let first_id = parts[0].0;
    let first: Vec<_> = parts.iter().filter(|p| p.0 == first_id).collect();
    assert_eq!(first.len(), 3);
    for (i, (_, part, of, n)) in first.iter().enumerate() {
        assert_eq!((*part as usize, *of), (i, 3));
        assert!(*n <= 3);
    }
    assert_eq!(first.iter().map(|p| p.3).sum::<usize>(), 8);
    server.stop().await;
}

#[tokio::test]
async fn a_metaserver_that_comes_up_late_is_registered_with_and_told_everything() {
    // Find a free port, and leave nothing listening on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let a = addr.clone();
    // One metaserver is up (it hands out the block keys a write needs); the other is not.
    let up = RecordingMeta::default();
    let (up_addr, _up) = up.start().await;
    let server = Blockserver::start(1, move |c| c.metaservers = vec![up_addr, a]).await;
    let mut c = server.client().await;
    // The data service works meanwhile.
    write(&mut c, 1, 0, b"early", 5)
        .await
        .expect("write while a metaserver is down");

    let meta = RecordingMeta::default();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .expect("bind late");
    let _stop = meta.serve(listener);
    let want = BTreeMap::from([((1, 0), 5)]);
    knows(&meta, &want, "registration and full report once it is up").await;
    write(&mut c, 2, 0, b"later", 5).await.expect("write");
    let want = BTreeMap::from([((1, 0), 5), ((2, 0), 5)]);
    knows(&meta, &want, "then incremental reports").await;
    server.stop().await;
}

#[tokio::test]
async fn a_failed_volume_is_reported_and_its_blocks_leave_the_report() {
    let meta = RecordingMeta::default();
    let (addr, _stop) = meta.start().await;
    let server = Blockserver::start(2, move |c| c.metaservers = vec![addr]).await;
    let mut c = server.client().await;
    for g in 0..6u64 {
        write(&mut c, g, 0, &bytes(100, 3), 100)
            .await
            .expect("write");
    }
    eventually("six blocks known", || {
        let n = meta.seen().blocks.len();
        async move { (n == 6).then_some(()) }
    })
    .await;
    // The first disk goes away.
    let lost: Vec<u64> = (0..6)
        .filter(|g| {
            server
                .block_file(*g, 0)
                .is_some_and(|p| p.starts_with(server.volume(0)))
        })
        .collect();
    assert!(!lost.is_empty(), "volume 0 held some blocks");
    std::fs::remove_dir_all(server.volume(0)).expect("remove volume 0");
    // The next write finds it out (or avoids it); reads of its blocks fail.
    let _ = write(&mut c, 100, 0, b"probe", 5).await;
    let _ = write(&mut c, 101, 0, b"probe", 5).await;
    eventually("the failed volume is reported", || {
        let failed = meta.seen().storage.map(|s| s.failed_volumes);
        async move { (failed == Some(1)).then_some(()) }
    })
    .await;
    eventually("its blocks left the metaserver's view", || {
        let gone = {
            let s = meta.seen();
            lost.iter().all(|g| !s.blocks.contains_key(&(*g, 0)))
        };
        async move { gone.then_some(()) }
    })
    .await;
    server.stop().await;
}
