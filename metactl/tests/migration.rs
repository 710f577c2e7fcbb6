//! Side-by-side migration on real processes (issue 19): two clusters, a tree copied from one
//! to the other with `metactl copy` (attributes kept, every file verified by its checksum,
//! comparable across layouts), rounds that copy only what changed, and resumption.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{LocalCluster, content, get_file, put_file};
use raftfs_client::file::file_checksum;
use raftfs_client::{AutoMsync, Client, ErrorKind, FileKind, FileStatus, ReadMode};

/// A small cluster: one voter, three blockservers in three racks.
fn cluster() -> LocalCluster {
    LocalCluster::up(
        1,
        &["--observers", "0", "--blockservers", "3", "--racks", "3"],
    )
}

/// `metactl copy` from `src`'s cluster; its JSON summary.
fn copy(src: &LocalCluster, from: &str, to_uri: &str, log: &std::path::Path) -> serde_json::Value {
    let out = src.ctl(&[
        "copy",
        from,
        to_uri,
        "--json",
        "--log",
        log.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary")
}

/// An entry below a root: its path below it, status, extended attributes and (files)
/// checksum.
type Seen = (String, FileStatus, Vec<(String, Vec<u8>)>, u32);

/// Every entry below `root`: what a copy must reproduce.
async fn tree(c: &Client, root: &str) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = format!("{root}{rel}");
        for e in c.list(&dir).await.expect("list") {
            let rel = format!("{rel}/{}", e.name);
            let path = format!("{root}{rel}");
            let xattrs = c.get_xattrs(&path, &[]).await.expect("xattrs");
            let sum = match e.kind {
                FileKind::File => file_checksum(c, &path).await.expect("checksum").crc32c,
                FileKind::Directory => {
                    stack.push(rel.clone());
                    0
                }
                FileKind::Symlink => 0,
            };
            out.push((rel, e, xattrs, sum));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What must be equal between an entry and its copy (not its id, not its groups' count:
/// the layouts may differ).
fn same(a: &FileStatus, b: &FileStatus) -> bool {
    (
        a.kind,
        a.length,
        a.permission,
        &a.owner,
        &a.group,
        a.mtime_ms,
        &a.storage_policy,
        &a.symlink_target,
    ) == (
        b.kind,
        b.length,
        b.permission,
        &b.owner,
        &b.group,
        b.mtime_ms,
        &b.storage_policy,
        &b.symlink_target,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_is_copied_with_its_attributes_and_later_rounds_copy_only_what_changed() {
    let (old, new) = (cluster(), cluster());
    let (src, dst) = (old.client(), new.client());
    let new_uri = format!("raftfs://{}/backup", new.file().meta_addrs().join(","));
    let log = tempfile::NamedTempFile::new().expect("log file");

    src.mkdir("/data/sub/deep", true).await.expect("mkdir");
    put_file(&src, "/data/a", "REPLICATED-3", &content(3 << 20, 1)).await;
    put_file(&src, "/data/sub/b", "XOR-2-1-1024k", &content(2_500_000, 2)).await;
    put_file(&src, "/data/sub/deep/empty", "REPLICATED-3", &[]).await;
    src.symlink("/data/link", "/data/a").await.expect("symlink");
    src.set_xattr("/data/a", "user.origin", b"old-cluster", None)
        .await
        .expect("xattr");
    src.set_permission("/data/sub", 0o700).await.expect("chmod");
    src.set_times("/data/a", Some(1_700_000_000_000), Some(1_700_000_000_000))
        .await
        .expect("times");

    let first = copy(&old, "/data", &new_uri, log.path());
    assert_eq!(first["files_copied"], 3, "{first}");
    assert_eq!(
        (first["symlinks"].as_u64(), first["errors"].as_u64()),
        (Some(1), Some(0))
    );
    let (want, got) = (tree(&src, "/data").await, tree(&dst, "/backup").await);
    assert_eq!(want.len(), got.len(), "{want:#?}\n{got:#?}");
    for ((wp, ws, wx, wsum), (gp, gs, gx, gsum)) in want.iter().zip(&got) {
        assert_eq!(wp, gp);
        assert!(same(ws, gs), "{wp}: {ws:?} copied as {gs:?}");
        assert_eq!((wx, wsum), (gx, gsum), "{wp}");
    }

    // Nothing changed: nothing copied. One file changed (same length, other bytes): only it.
    let again = copy(&old, "/data", &new_uri, log.path());
    assert_eq!(
        (
            again["files_copied"].as_u64(),
            again["files_skipped"].as_u64()
        ),
        (Some(0), Some(3))
    );
    src.delete("/data/sub/b", false).await.expect("delete");
    put_file(&src, "/data/sub/b", "XOR-2-1-1024k", &content(2_500_000, 3)).await;
    let third = copy(&old, "/data", &new_uri, log.path());
    assert_eq!(
        (
            third["files_copied"].as_u64(),
            third["files_skipped"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        file_checksum(&dst, "/backup/sub/b")
            .await
            .expect("checksum")
            .crc32c,
        file_checksum(&src, "/data/sub/b")
            .await
            .expect("checksum")
            .crc32c,
    );

    // An interrupted round resumes: a file removed at the destination, a temporary left
    // behind, and the next round brings it back.
    dst.delete("/backup/a", false).await.expect("delete");
    put_file(&dst, "/backup/a._COPYING_", "REPLICATED-3", b"partial").await;
    let resumed = copy(&old, "/data", &new_uri, log.path());
    assert_eq!(resumed["files_copied"], 1, "{resumed}");
    assert_eq!(tree(&dst, "/backup").await.len(), want.len());

    // With --delete the destination ends equal to the source: what the source no longer has,
    // and a name that became another kind, are removed at the destination.
    src.delete("/data/sub/deep", true).await.expect("delete");
    src.delete("/data/link", false).await.expect("delete");
    src.mkdir("/data/link", false)
        .await
        .expect("a directory of that name");
    let out = old.ctl(&["copy", "/data", &new_uri, "--delete", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pruned: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(pruned["deleted"], 2, "{pruned}");
    let (want, got) = (tree(&src, "/data").await, tree(&dst, "/backup").await);
    let names = |t: &[Seen]| -> Vec<(String, FileKind)> {
        t.iter().map(|(p, s, _, _)| (p.clone(), s.kind)).collect()
    };
    assert_eq!(names(&want), names(&got));

    // Everything a copy did is in its log.
    let lines = std::fs::read_to_string(log.path()).expect("log");
    let copies = lines
        .lines()
        .filter(|l| l.contains("\"action\":\"copy\""))
        .count();
    assert_eq!(copies, 3 + 1 + 1, "{lines}");
}

/// Every block file (data and checksums) on every blockserver of `cluster`.
fn block_files(cluster: &LocalCluster) -> BTreeSet<PathBuf> {
    cluster
        .file()
        .block
        .iter()
        .flat_map(|b| common::finalized_files(Path::new(&b.data_dir)))
        .collect()
}

/// Waits (up to two minutes) until none of `files` is on a disk.
async fn wait_gone(what: &str, cluster: &LocalCluster, files: &BTreeSet<PathBuf>) {
    let start = Instant::now();
    while !block_files(cluster).is_disjoint(files) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for the blocks of {what} to leave the disks"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `path` and returns the block files it added.
async fn put_tracked(
    cluster: &LocalCluster,
    c: &Client,
    path: &str,
    policy: &str,
    data: &[u8],
) -> BTreeSet<PathBuf> {
    let before = block_files(cluster);
    put_file(c, path, policy, data).await;
    // Blockservers finalize as the writer closes each block: wait for all of them.
    let start = Instant::now();
    loop {
        let added: BTreeSet<PathBuf> = block_files(cluster).difference(&before).cloned().collect();
        if !added.is_empty() || start.elapsed() > Duration::from_secs(10) {
            return added;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// Namespace snapshots on real processes (DESIGN §13): taken by `metactl`, read at
/// `DIR/.snapshot/NAME` (bytes, attributes, checksums) after the live tree was rewritten and
/// deleted, on an observer as well, across a checkpoint and a restart; read-only; their
/// blocks outlive the live files until the snapshot is deleted, then leave the disks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_show_the_tree_as_it_was_and_keep_its_blocks_until_deleted() {
    let cluster = LocalCluster::up(
        1,
        &["--observers", "1", "--blockservers", "3", "--racks", "3"],
    );
    let c = cluster.client();
    c.mkdir("/data/sub", true).await.expect("mkdir");
    let (a1, b1) = (content(3 << 20, 1), content(700_000, 2));
    let a1_blocks = put_tracked(&cluster, &c, "/data/a", "XOR-2-1-1024k", &a1).await;
    put_file(&c, "/data/sub/b", "REPLICATED-3", &b1).await;
    c.set_xattr("/data/a", "user.v", b"1", None)
        .await
        .expect("xattr");
    assert!(!a1_blocks.is_empty());

    ok(cluster.ctl(&["fs", "allow-snapshot", "/data"]));
    let made = ok(cluster.ctl(&["fs", "create-snapshot", "/data", "s1"]));
    assert_eq!(made.trim(), "/data/.snapshot/s1");
    let then = tree(&c, "/data").await;

    // The live tree moves on: a file rewritten, a subtree deleted, one added; and a file
    // outside any snapshot is written and deleted, to see the garbage sweep run.
    c.delete("/data/a", false).await.expect("delete");
    put_file(&c, "/data/a", "REPLICATED-3", &content(1 << 20, 9)).await;
    c.set_xattr("/data/a", "user.v", b"2", None)
        .await
        .expect("xattr");
    c.delete("/data/sub", true).await.expect("delete");
    c.mkdir("/data/new", false).await.expect("mkdir");
    let scratch = put_tracked(&cluster, &c, "/scratch", "REPLICATED-3", &content(5000, 4)).await;
    c.delete("/scratch", false).await.expect("delete");
    wait_gone("a deleted file", &cluster, &scratch).await;

    let seen = tree(&c, "/data/.snapshot/s1").await;
    assert_eq!(seen.len(), then.len(), "{seen:#?}");
    for ((wp, ws, wx, wsum), (gp, gs, gx, gsum)) in then.iter().zip(&seen) {
        assert_eq!(wp, gp);
        assert!(same(ws, gs), "{wp}: {ws:?} reads as {gs:?}");
        assert_eq!((wx, wsum), (gx, gsum), "{wp}");
    }
    assert!(block_files(&cluster).is_superset(&a1_blocks), "kept");
    assert_eq!(get_file(&c, "/data/.snapshot/s1/a").await, a1);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(cluster.ctl(&["fs", "ls-snapshots", "/data", "--json"])))
            .expect("json");
    assert_eq!(listed["entries"][0]["name"], "s1", "{listed}");

    // What changed since: the file rewritten is another file, the subtree deleted.
    let report = ok(cluster.ctl(&["fs", "snapshot-diff", "/data", "s1", "."]));
    for line in ["M\t.", "-\t./a", "+\t./a", "-\t./sub", "+\t./new"] {
        assert!(report.lines().any(|l| l == line), "{line:?} in {report}");
    }

    // Read-only.
    let refused = c
        .mkdir("/data/.snapshot/s1/x", false)
        .await
        .expect_err("read-only");
    assert_eq!(refused.kind(), Some(ErrorKind::Snapshot), "{refused}");

    // An observer serves it under the state-ID rule.
    let observer = cluster.client_with(ReadMode::Observer, AutoMsync::Always);
    assert_eq!(get_file(&observer, "/data/.snapshot/s1/sub/b").await, b1);

    // It is in the state machine's snapshot, and read back after a restart.
    ok(cluster.ctl(&["cluster", "checkpoint"]));
    let voter = cluster.ids("voter")[0];
    cluster.stop(voter);
    cluster.start(voter);
    // The restarted active knows where blocks are once the blockservers report again.
    let start = Instant::now();
    while c
        .get_blocks("/data/.snapshot/s1/a", 0, 0, 0)
        .await
        .map_or(true, |b| b.groups.iter().any(|g| g.locations.len() < 3))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no block reports"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get_file(&c, "/data/.snapshot/s1/a").await, a1);

    // Deleted, its blocks go.
    ok(cluster.ctl(&["fs", "delete-snapshot", "/data", "s1"]));
    wait_gone("the snapshot's old file", &cluster, &a1_blocks).await;
    assert!(c.stat("/data/.snapshot/s1").await.is_err());
    assert_eq!(tree(&c, "/data").await.len(), 2, "a and new");
}

/// What a writer on a cluster did, and how many of its operations failed.
#[derive(Default)]
struct Workload {
    ops: u64,
    failed: Vec<String>,
}

/// A writer that keeps creating, rewriting, appending (reopening a file and adding to an
/// attribute list), renaming (files and directories) and deleting below `root` until
/// `stop`, one operation at a time; each must succeed.
async fn keep_writing(
    c: Client,
    root: String,
    seed: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Workload {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut w = Workload::default();
    let mut dirs: Vec<String> = vec![format!("{root}/w0")];
    let mut files: Vec<String> = Vec::new();
    let _ = c.mkdir(&dirs[0], true).await;
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let pick =
            |rng: &mut rand::rngs::StdRng, v: &Vec<String>| v[rng.random_range(0..v.len())].clone();
        let op = rng.random_range(0..10);
        let r: Result<(), String> = match op {
            0..=2 => {
                let path = format!("{}/f{n}", pick(&mut rng, &dirs));
                let len = rng.random_range(1..20_000);
                put_file(&c, &path, "REPLICATED-3", &content(len, n as u8)).await;
                files.push(path);
                Ok(())
            }
            3 if !files.is_empty() => {
                let path = pick(&mut rng, &files);
                match c.delete(&path, false).await {
                    Ok(()) => {
                        let len = rng.random_range(1..20_000);
                        put_file(&c, &path, "REPLICATED-3", &content(len, 7)).await;
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            4 if !files.is_empty() => {
                let path = pick(&mut rng, &files);
                async {
                    let len = c.stat(&path).await?.length;
                    c.append(&path).await?;
                    c.complete(&path, len).await?;
                    c.append_xattr(&path, "user.log", format!("{n},").as_bytes())
                        .await
                }
                .await
                .map(drop)
                .map_err(|e| e.to_string())
            }
            5 if !files.is_empty() => {
                let i = rng.random_range(0..files.len());
                let to = format!("{}/g{n}", pick(&mut rng, &dirs));
                let r = c.rename(&files[i], &to, false).await.map(drop);
                files[i] = to;
                r.map_err(|e| e.to_string())
            }
            6 if !files.is_empty() => {
                let path = files.swap_remove(rng.random_range(0..files.len()));
                c.delete(&path, false).await.map_err(|e| e.to_string())
            }
            7 => {
                let path = format!("{root}/w{n}");
                dirs.push(path.clone());
                c.mkdir(&path, false)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            8 if dirs.len() > 1 => {
                let i = rng.random_range(1..dirs.len());
                let (from, to) = (dirs[i].clone(), format!("{root}/d{n}"));
                let r = c
                    .rename(&from, &to, false)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string());
                for f in files
                    .iter_mut()
                    .filter(|f| f.starts_with(&format!("{from}/")))
                {
                    *f = format!("{to}{}", &f[from.len()..]);
                }
                dirs[i] = to;
                r
            }
            _ => Ok(()),
        };
        w.ops += 1;
        if let Err(e) = r {
            w.failed.push(format!("op {op}: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    w
}

/// Asserts that two trees hold the same entries, attributes, extended attributes and bytes.
async fn assert_level(what: &str, a: &Client, a_root: &str, b: &Client, b_root: &str) {
    let (want, got) = (tree(a, a_root).await, tree(b, b_root).await);
    let names = |t: &[Seen]| t.iter().map(|(p, _, _, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&want), names(&got), "{what}: names");
    for ((wp, ws, wx, wsum), (_, gs, gx, gsum)) in want.iter().zip(&got) {
        assert!(same(ws, gs), "{what}: {wp}: {ws:?} copied as {gs:?}");
        assert_eq!((wx, wsum), (gx, gsum), "{what}: {wp}");
    }
}

/// `metactl copy --diff FROM TO` run from `on`'s cluster; its JSON summary.
fn copy_diff(
    on: &LocalCluster,
    from: &str,
    to: &str,
    src: &str,
    dst_uri: &str,
) -> serde_json::Value {
    let out = on.ctl(&["copy", src, dst_uri, "--diff", from, to, "--json"]);
    serde_json::from_str(&ok(out)).expect("summary")
}

/// The seed's procedure (issue 19): an old and a new cluster side by side; a writer keeps
/// changing the old one; an initial copy of a snapshot, then five diff rounds, each making
/// the new cluster equal to the old at that round's snapshot (listing, attributes,
/// checksums); the workload moves to the new cluster; a round the other way brings the old
/// one level again. No client operation fails on either cluster, and a destination changed
/// behind a round's back is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diff_rounds_keep_a_new_cluster_level_with_a_busy_old_one_and_back() {
    let (old, new) = (cluster(), cluster());
    let (src, dst) = (old.client(), new.client());
    let uri = |c: &LocalCluster, path: &str| {
        format!("raftfs://{}{path}", c.file().meta_addrs().join(","))
    };
    src.mkdir("/data/w0", true).await.expect("mkdir");
    for i in 0..10 {
        put_file(
            &src,
            &format!("/data/w0/seed{i}"),
            "REPLICATED-3",
            &content(50_000 + i * 1000, i as u8),
        )
        .await;
    }
    src.allow_snapshot("/data").await.expect("allow");
    src.create_snapshot("/data", Some("s0"))
        .await
        .expect("snapshot");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writer = Some(tokio::spawn(keep_writing(
        src.clone(),
        "/data".into(),
        1,
        stop.clone(),
    )));

    // The initial copy, of the snapshot; the destination takes the same snapshot.
    let first = old.ctl(&["copy", "/data/.snapshot/s0", &uri(&new, "/data"), "--json"]);
    ok(first);
    dst.allow_snapshot("/data").await.expect("allow");
    dst.create_snapshot("/data", Some("s0"))
        .await
        .expect("snapshot");
    assert_level("s0", &src, "/data/.snapshot/s0", &dst, "/data/.snapshot/s0").await;

    let mut prev = "s0".to_owned();
    for round in 1..=5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        if round == 5 {
            // The cut-over: writes stop, the last round runs.
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let name = format!("s{round}");
        if round == 5 {
            let w = writer
                .take()
                .expect("the writer runs until the cut-over")
                .await
                .expect("writer");
            assert!(
                w.failed.is_empty(),
                "old cluster: {} of {} failed: {:?}",
                w.failed.len(),
                w.ops,
                w.failed
            );
            assert!(w.ops > 30, "{} operations", w.ops);
        }
        src.create_snapshot("/data", Some(&name))
            .await
            .expect("snapshot");
        let summary = copy_diff(&old, &prev, &name, "/data", &uri(&new, "/data"));
        assert_eq!(summary["errors"], 0, "{summary}");
        assert_level(
            &name,
            &src,
            &format!("/data/.snapshot/{name}"),
            &dst,
            &format!("/data/.snapshot/{name}"),
        )
        .await;
        prev = name;
    }
    assert_level("after the cut-over", &src, "/data", &dst, "/data").await;

    // A destination changed behind the rounds' back is refused.
    dst.mkdir("/data/stray", false).await.expect("mkdir");
    src.create_snapshot("/data", Some("s5b"))
        .await
        .expect("snapshot");
    let refused = old.ctl(&["copy", "/data", &uri(&new, "/data"), "--diff", "s5", "s5b"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("changed since its snapshot s5"));
    dst.delete("/data/stray", false).await.expect("delete");

    // The workload moves to the new cluster; a reverse round brings the old one level.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(keep_writing(dst.clone(), "/data".into(), 2, stop.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let w = writer.await.expect("writer");
    assert!(w.failed.is_empty(), "new cluster: {:?}", w.failed);
    dst.create_snapshot("/data", Some("s6"))
        .await
        .expect("snapshot");
    let back = copy_diff(&new, "s5", "s6", "/data", &uri(&old, "/data"));
    assert_eq!(back["errors"], 0, "{back}");
    assert_level("reverse", &dst, "/data/.snapshot/s6", &src, "/data").await;
}

fn client_at(addrs: Vec<String>) -> Client {
    let mut c = raftfs_client::ClientConfig::new(addrs);
    c.failover_deadline = Duration::from_secs(30);
    Client::new(c).expect("client")
}

/// The files below `dir` (its subdirectories' files, one level down), through `c`.
async fn files_below(c: &Client, dir: &str) -> usize {
    let mut n = 0;
    for run in c.list(dir).await.expect("list") {
        let run = format!("{dir}/{}", run.name);
        for sub in c.list(&run).await.expect("list run") {
            n += c
                .list(&format!("{run}/{}", sub.name))
                .await
                .expect("list dir")
                .len();
        }
    }
    n
}

/// Item 5 (`metactl balance`, HDFS's fedbalance) under a running `loadgen meta` load through
/// a router: a balance cancelled (Ctrl-C) after its first rounds rolls back (the mount, the
/// source and the destination as they were); a full one moves `/data` from ns1 to ns2 in
/// rounds and a short read-only window. The only failed operations of the load are creates
/// refused as `ReadOnly` (typed, retriable) during that window; every acknowledged create is
/// in ns2 afterwards, the data files' bytes too; the source went to ns1's trash, unfrozen,
/// without the balance's snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_moves_a_mount_under_load_and_only_its_window_refuses_writes() {
    let cluster = LocalCluster::up(
        1,
        &[
            "--nameservices",
            "2",
            "--observers",
            "0",
            "--blockservers",
            "3",
            "--racks",
            "3",
            "--routers",
            "1",
        ],
    );
    let top = cluster.file();
    let router = client_at(vec![top.routers[0].addr.clone()]);
    let ns_client = |i: usize| {
        let file = raftfs_client::discovery::ClusterFile::read(Path::new(&top.nameservices[i].dir))
            .expect("the nameservice's cluster.json");
        client_at(file.meta_addrs())
    };
    let (ns1, ns2) = (ns_client(0), ns_client(1));
    router
        .mount_add("/data", "ns1", "/data")
        .await
        .expect("mount");
    router.mkdir("/data/files", true).await.expect("mkdir");
    let mut datas = Vec::new();
    for i in 0..3u8 {
        let path = format!("/data/files/f{i}");
        let bytes = content(200_000 + usize::from(i) * 7_000, i);
        put_file(&router, &path, "REPLICATED-3", &bytes).await;
        datas.push((path, bytes));
    }
    router
        .set_xattr("/data/files", "user.team", b"storage", None)
        .await
        .expect("xattr");

    let tmp = tempfile::tempdir().expect("tempdir");
    let errors = tmp.path().join("errors.jsonl");
    let dir = cluster.dir_arg();
    let load_started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let load = std::process::Command::new(common::loadgen_bin())
        .args(["--rate", "20", "--error-log"])
        .arg(&errors)
        .args(["--json", "meta", "--op", "create", "--clients", "4"])
        .args(["--ops", "1200", "--roots", "/data", "--cluster", &dir])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("loadgen");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A balance cancelled after two rounds rolls back.
    let cancelled_log = tmp.path().join("cancelled.jsonl");
    let cancelled = std::process::Command::new(common::metactl_bin())
        .args(["--cluster", &dir, "balance", "/data", "ns2", "--small", "0"])
        .args(["--max-rounds", "1000", "--log"])
        .arg(&cancelled_log)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("balance");
    let start = Instant::now();
    while !std::fs::read_to_string(&cancelled_log).is_ok_and(|l| l.contains("balance-2")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no second round within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(cancelled.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let out = cancelled.wait_with_output().expect("balance ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a cancelled balance succeeded");
    assert!(stderr.contains("rolled back"), "{stderr}");
    let table = router.mount_table().await.expect("table");
    let (_, to) = table.entries().next().expect("the mount");
    assert_eq!(to.to_string(), "ns1:/data");
    assert!(
        ns1.freeze("/data", false)
            .await
            .is_err_and(|e| e.is(ErrorKind::NotFound))
    );
    let snaps = ns1.list("/data/.snapshot").await;
    assert!(
        snaps.is_err(),
        "{snaps:?}: the source is snapshottable still"
    );
    let dst = ns2.stat("/data").await;
    assert!(
        dst.as_ref().is_err_and(|e| e.is(ErrorKind::NotFound)),
        "a copy is left: {dst:?}\n{stderr}\n{}",
        std::fs::read_to_string(&cancelled_log).unwrap_or_default()
    );

    // The full balance.
    let log = tmp.path().join("balance.jsonl");
    let out = cluster.ctl(&[
        "balance",
        "/data",
        "ns2",
        "--small",
        "200",
        "--settle",
        "3s",
        "--json",
        "--log",
        log.to_str().expect("utf8"),
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(out)).expect("report");
    eprintln!("balance: {report}");
    let window = (
        report["window_start_ms"].as_u64().expect("start"),
        report["window_end_ms"].as_u64().expect("end"),
    );
    assert!(window.1 > window.0, "{report}");
    assert!(report["rounds"].as_array().expect("rounds").len() >= 3);
    let trash = report["trash"].as_str().expect("trash").to_owned();

    let out = load.wait_with_output().expect("loadgen ends");
    let load_report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    eprintln!("load: {load_report}");
    let failed = load_report["errors"].as_u64().expect("errors");
    let log_lines = std::fs::read_to_string(&errors).unwrap_or_default();
    let failures: Vec<serde_json::Value> = log_lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(failures.len() as u64, failed, "{log_lines}");
    for f in &failures {
        assert_eq!(f["kind"], "ReadOnly", "{f}");
        let (began, ended) = (f["began_ms"].as_u64(), f["ended_ms"].as_u64());
        let (began, ended) = (began.expect("began"), ended.expect("ended"));
        assert!(
            began <= window.1 && ended >= window.0,
            "{f}: outside the window {window:?}"
        );
    }
    // The load ran through the window (else it showed nothing): its timed part alone
    // ended after the window did.
    let seconds = load_report["seconds"].as_f64().expect("seconds");
    assert!(
        load_started_ms + (seconds * 1000.0) as u64 > window.1,
        "the load ended before the window: {load_report}"
    );

    // Every acknowledged create is in ns2, as are the data files and their attributes.
    let table = router.mount_table().await.expect("table");
    let (_, to) = table.entries().next().expect("the mount");
    assert_eq!(to.to_string(), "ns2:/data");
    let created = files_below(&router, "/data").await - datas.len();
    let ops = load_report["ops"].as_u64().expect("ops");
    assert_eq!(created as u64, ops - failed, "acknowledged creates lost");
    assert_eq!(files_below(&ns2, "/data").await, created + datas.len());
    for (path, bytes) in &datas {
        assert_eq!(&get_file(&router, path).await, bytes, "{path}");
        assert_eq!(&get_file(&ns2, path).await, bytes, "{path}");
    }
    let xattrs = ns2.get_xattrs("/data/files", &[]).await.expect("xattrs");
    assert!(
        xattrs
            .iter()
            .any(|(n, v)| n == "user.team" && v == b"storage")
    );
    // The source: in ns1's trash, without the balance's snapshots; its path stays frozen, so
    // that a late write cannot land where nobody reads.
    assert!(ns1.stat(&trash).await.is_ok(), "{trash}");
    assert!(
        ns1.stat("/data")
            .await
            .is_err_and(|e| e.is(ErrorKind::NotFound))
    );
    let late = ns1.mkdir("/data/late", true).await;
    assert!(late.is_err_and(|e| e.is(ErrorKind::ReadOnly) && e.is_retriable()));
    assert!(ns1.list(&format!("{trash}/.snapshot")).await.is_err());
    assert!(ns2.list("/data/.snapshot").await.is_err());

    // And back: the balance to ns1 thaws the path it left there.
    let out = cluster.ctl(&["balance", "/data", "ns1", "--settle", "1s", "--json"]);
    let back: serde_json::Value = serde_json::from_str(&ok(out)).expect("report");
    eprintln!("back: {back}");
    let table = router.mount_table().await.expect("table");
    let (_, to) = table.entries().next().expect("the mount");
    assert_eq!(to.to_string(), "ns1:/data");
    assert_eq!(files_below(&ns1, "/data").await, created + datas.len());
    for (path, bytes) in &datas {
        assert_eq!(&get_file(&router, path).await, bytes, "{path}");
    }
    let late = ns2.mkdir("/data/late", true).await;
    assert!(late.is_err_and(|e| e.is(ErrorKind::ReadOnly)));
    router
        .mkdir("/data/after", false)
        .await
        .expect("writable through the mount");
}
