//! A large recursive delete through real processes (issue #15): the tree is gone for clients
//! the moment `fs rm -r` returns; the active then reclaims it in small entries, a kill -9 of
//! that active in the middle does not stop it (the new active goes on), and the blocks of
//! the deleted files leave the blockservers' disks.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::LocalCluster;
use raftfs_client::{Client, ClientConfig, CreateOptions, FileWriter};
use tokio::io::AsyncWriteExt;

/// Files with data, and metadata-only files, in the deleted tree.
const DATA_FILES: usize = 12;
const EMPTY_FILES: usize = 3000;
/// Records per reclaim entry: small, so that reclaiming takes many entries and rounds.
const BUDGET: &str = "10";

/// Bytes of finalized block files (data and checksums) on a blockserver's volume.
fn stored_bytes(data_dir: &Path) -> u64 {
    common::finalized_files(data_dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn all_stored(cluster: &LocalCluster) -> u64 {
    cluster
        .file()
        .block
        .iter()
        .map(|b| stored_bytes(Path::new(&b.data_dir)))
        .sum()
}

/// The reclaim worker's items on member `id` (rounds that ended).
async fn reclaimed_on(client: &Client, cluster: &LocalCluster, id: u64) -> Option<u64> {
    let status = client.node_status(&cluster.addr_of(id)).await.ok()?;
    let w = status.workers.iter().find(|w| w.name == "reclaim")?;
    assert_eq!(w.errors, 0, "{w:?}");
    Some(w.items)
}

async fn wait_for(what: &str, secs: u64, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_delete_is_gone_at_once_and_reclaimed_across_a_failover() {
    let cluster = LocalCluster::up(
        3,
        &[
            "--observers",
            "0",
            "--blockservers",
            "3",
            "--reclaim-budget",
            BUDGET,
        ],
    );
    let mut config = ClientConfig::new(cluster.file().meta_addrs());
    config.failover_deadline = Duration::from_secs(30);
    let client = Client::new(config).expect("client");

    // The tree: metadata-only files in ten directories, and files with data in the last
    // directory (created last, so reclaimed among the last).
    client.mkdir("/big", false).await.expect("mkdir");
    for d in 0..10 {
        client
            .mkdir(&format!("/big/d{d}"), false)
            .await
            .expect("mkdir");
    }
    // 64 creates at a time.
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..EMPTY_FILES {
        if creates.len() >= 64 {
            creates
                .join_next()
                .await
                .expect("a create")
                .expect("joined");
        }
        let client = client.clone();
        creates.spawn(async move {
            let path = format!("/big/d{}/f{i:05}", i % 10);
            client
                .create(&path, &CreateOptions::default())
                .await
                .unwrap_or_else(|e| panic!("create {path}: {e}"));
        });
    }
    while let Some(done) = creates.join_next().await {
        done.expect("joined");
    }
    let opts = CreateOptions {
        create_parents: true,
        block_size: 1 << 20,
        ..CreateOptions::default()
    };
    for i in 0..DATA_FILES {
        let path = format!("/big/zz/data{i}");
        let mut w = FileWriter::create(&client, &path, &opts)
            .await
            .expect("create");
        w.write_all(&vec![i as u8; 300_000]).await.expect("write");
        w.shutdown().await.expect("close");
    }
    client.mkdir("/keep", false).await.expect("mkdir");
    let stored = all_stored(&cluster);
    assert!(
        stored >= (DATA_FILES * 300_000 * 3) as u64,
        "{stored} bytes stored"
    );

    // Gone at once.
    let out = cluster.ctl(&["fs", "rm", "-r", "/big"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = client
        .list("/")
        .await
        .expect("ls")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["keep"]);

    // Kill -9 the active once its reclaim worker has made progress, long before the end
    // (3,000+ inodes at 10 records an entry, 16 entries a round).
    let active = client.cluster_status().await.expect("status").leader.get();
    wait_for("the first reclaim round", 30, async || {
        reclaimed_on(&client, &cluster, active)
            .await
            .is_some_and(|n| n > 0)
    })
    .await;
    cluster.kill(active);

    // The new active goes on, and the deleted files' blocks leave every disk.
    let mut next = active;
    wait_for("a new active", 30, async || {
        next = client
            .cluster_status()
            .await
            .map_or(active, |s| s.leader.get());
        next != active
    })
    .await;
    wait_for("the new active's reclaim rounds", 60, async || {
        reclaimed_on(&client, &cluster, next)
            .await
            .is_some_and(|n| n > 0)
    })
    .await;
    wait_for("the deleted blocks to leave the disks", 120, async || {
        all_stored(&cluster) == 0
    })
    .await;
    // Namespace work went on meanwhile, and the rest of the tree is intact.
    client.mkdir("/big", false).await.expect("the name is free");
    let keep = client.stat("/keep").await.expect("stat");
    assert_eq!(keep.name, "keep");
}

/// A cluster booted from a generated namespace (`local generate`, `local up --seed`) serves
/// the generated tree, and members that join later get it too: `local up` checkpoints a
/// seeded cluster (its log does not hold the tree), so an observer catches up from the
/// snapshot rather than replaying a log that would leave it empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_cluster_serves_its_tree_to_members_that_join_later() {
    let files = 5_000u64;
    let seed_dir = tempfile::tempdir().expect("tempdir");
    let seed = seed_dir.path().join("seed");
    let seed_arg = seed.to_str().expect("utf8").to_owned();
    let out = common::metactl(&[
        "local",
        "generate",
        "--out",
        &seed_arg,
        "--files",
        &files.to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster = LocalCluster::up(3, &["--observers", "1", "--seed", &seed_arg]);
    let shape = raftfs_core::synthetic::Shape {
        files,
        ..raftfs_core::synthetic::Shape::default()
    };
    let last = raftfs_core::synthetic::file_path(&shape, files - 1).expect("path");
    let active = cluster.client();
    assert_eq!(
        active.stat(&last).await.expect("stat on the active").length,
        shape.file_length
    );

    let observer = cluster.ids("observer")[0];
    let status = active
        .node_status(&cluster.addr_of(observer))
        .await
        .expect("observer status");
    assert!(status.snapshots_installed >= 1, "{status:?}");
    let reader = cluster.client_with(
        raftfs_client::ReadMode::Observer,
        raftfs_client::AutoMsync::Never,
    );
    let st = reader.stat(&last).await.expect("stat on the observer");
    assert_eq!(st.length, shape.file_length);
    let summary = reader.content_summary("/gen").await.expect("summary");
    assert_eq!(summary.files, files);

    // `fs ls` prints a directory page by page; a reader that stops early (`| head`) ends it
    // quietly (1,000 lines are more than a pipe holds).
    let mut ls = std::process::Command::new(common::metactl_bin())
        .args(["--cluster", &cluster.dir_arg(), "fs", "ls", "/gen/d0000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("metactl fs ls");
    let mut first = String::new();
    let stdout = ls.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)
        .expect("first line");
    assert_eq!(first.trim(), "Found 1000 items");
    let out = ls.wait_with_output().expect("ls ends");
    assert!(
        out.status.success(),
        "ls into a closed pipe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
