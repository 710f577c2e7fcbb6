//! The data path through real processes (DESIGN §6, issue "Data path"): metaservers and
//! blockservers started by `metactl local up`, files written and read by the client library
//! and by `metactl fs put|get|cat`, blockservers killed, bytes flipped on disk, a writer
//! killed mid-file, full disks.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{LocalCluster, metactl_bin};
use raftfs_client::file::file_checksum;
use raftfs_client::{Client, ClientConfig, CreateOptions, FileReader, FileWriter};
use raftfs_core::checksum::crc32c;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const MIB: u64 = 1 << 20;
const CELL: u64 = MIB;

/// Deterministic, position-dependent bytes: a misplaced cell cannot look right.
fn bytes(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn data_cluster(blockservers: u32, racks: u32, extra: &[&str]) -> LocalCluster {
    let bs = blockservers.to_string();
    let racks = racks.to_string();
    let mut args = vec!["--observers", "0", "--blockservers", &bs, "--racks", &racks];
    args.extend_from_slice(extra);
    LocalCluster::up(3, &args)
}

fn client(cluster: &LocalCluster) -> Client {
    let mut c = ClientConfig::new(cluster.file().meta_addrs());
    c.failover_deadline = Duration::from_secs(30);
    c.block_read_timeout = Duration::from_secs(3);
    Client::new(c).expect("client")
}

async fn write(c: &Client, path: &str, data: &[u8], policy: &str, block_size: u64) {
    let opts = CreateOptions {
        storage_policy: policy.into(),
        block_size,
        create_parents: true,
        ..CreateOptions::default()
    };
    let mut w = FileWriter::create(c, path, &opts)
        .await
        .unwrap_or_else(|e| panic!("create {path}: {e}"));
    // Uneven writes, so that units are assembled from several calls.
    for chunk in data.chunks(700_001) {
        w.write_all(chunk)
            .await
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    w.shutdown()
        .await
        .unwrap_or_else(|e| panic!("close {path}: {e}"));
}

async fn read_all(c: &Client, path: &str) -> Vec<u8> {
    let mut r = FileReader::open(c, path)
        .await
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .await
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    out
}

/// Waits until every live blockserver reported the blocks written so far and the groups
/// below `path` are all healthy.
async fn wait_healthy(c: &Client, path: &str) -> raftfs_core::fsck::FsckReport {
    let start = Instant::now();
    loop {
        let r = c.fsck(path, false).await.expect("fsck");
        if r.degraded == 0 && r.missing == 0 {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "groups below {path} never became healthy: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {at}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_and_get_every_policy_at_every_boundary() {
    // RS-10-4 needs 14 servers for its 14 internal blocks.
    let cluster = data_cluster(14, 3, &[]);
    let c = client(&cluster);
    let policies = [
        ("REPLICATED-3", 1usize),
        ("RS-6-3-1024k", 6),
        ("RS-3-2-1024k", 3),
        ("RS-10-4-1024k", 10),
        ("XOR-2-1-1024k", 2),
    ];
    for (policy, k) in policies {
        let stripe = k as u64 * CELL;
        let sizes = [0, 1, CELL - 1, CELL + 1, stripe, 2 * stripe + CELL / 2 + 3];
        for (i, size) in sizes.into_iter().enumerate() {
            let path = format!("/{policy}/f{i}-{size}");
            let data = bytes(size, i as u64 + 1);
            write(&c, &path, &data, policy, 0).await;
            let st = c.stat(&path).await.expect("stat");
            assert_eq!(st.length, size, "{path}");
            assert!(!st.under_construction, "{path}");
            assert_eq!(st.storage_policy, policy, "{path}");
            assert_same(&read_all(&c, &path).await, &data, &path);
            // The same bytes, the same checksum whatever the layout: the CRC32C of the bytes
            // (sizes 0..4 are the same content under every policy), put together from the
            // stored checksums, nothing read.
            let sum = file_checksum(&c, &path).await.expect("checksum");
            assert_eq!(
                (sum.crc32c, sum.length, sum.groups_read),
                (crc32c(&data), size, 0),
                "{path}"
            );
        }
        // Many block groups: 1 MiB internal blocks put one stripe in each group.
        let path = format!("/{policy}/groups");
        let data = bytes(3 * stripe + 5, 99);
        write(&c, &path, &data, policy, MIB).await;
        let st = c.stat(&path).await.expect("stat");
        assert_eq!(st.block_groups, 4, "{path}");
        assert_same(&read_all(&c, &path).await, &data, &path);
        let sum = file_checksum(&c, &path).await.expect("checksum");
        assert_eq!((sum.crc32c, sum.groups), (crc32c(&data), 4), "{path}");
        // Seek and read across a group boundary.
        let mut r = FileReader::open(&c, &path).await.expect("open");
        let at = stripe - 10;
        r.seek(std::io::SeekFrom::Start(at)).await.expect("seek");
        let mut buf = vec![0u8; 20];
        r.read_exact(&mut buf).await.expect("read across groups");
        assert_same(&buf, &data[at as usize..at as usize + 20], "seek");
    }
    let health = wait_healthy(&c, "/").await;
    assert_eq!(health.files, 35);
    pages_of_groups_and_of_fsck(&cluster, &c, &health).await;

    // The CLI: put, get, cat, fsck --json, ec report.
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("in");
    let data = bytes(6 * CELL + 123, 7);
    std::fs::write(&local, &data).expect("write local");
    let ok = |args: &[&str]| {
        let out = cluster.ctl(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    ok(&["fs", "mkdir", "/cli"]);
    ok(&["ec", "set-policy", "/cli", "RS-6-3-1024k"]);
    let local_arg = local.to_str().expect("utf8");
    ok(&["fs", "put", local_arg, "/cli/f"]);
    let policy = ok(&["ec", "get-policy", "/cli/f"]);
    assert_eq!(String::from_utf8_lossy(&policy).trim(), "RS-6-3-1024k");
    let again = cluster.ctl(&["fs", "put", local_arg, "/cli/f"]);
    assert!(
        !again.status.success(),
        "put over an existing file needs -f"
    );
    let back = dir.path().join("out");
    ok(&["fs", "get", "/cli/f", back.to_str().expect("utf8")]);
    assert_same(&std::fs::read(&back).expect("read back"), &data, "fs get");
    assert_same(&ok(&["fs", "cat", "/cli/f"]), &data, "fs cat");
    let sum = String::from_utf8_lossy(&ok(&["fs", "checksum", "/cli/f"])).into_owned();
    assert!(
        sum.contains(&format!("COMPOSITE-CRC32C\t{:08x}", crc32c(&data))),
        "{sum}"
    );
    let fsck: serde_json::Value =
        serde_json::from_slice(&ok(&["fsck", "--json"])).expect("fsck json");
    assert_eq!(fsck["missing"], 0, "{fsck}");
    assert!(fsck["groups"].as_u64().is_some_and(|g| g >= 30), "{fsck}");
    let report = String::from_utf8_lossy(&ok(&["ec", "report"])).into_owned();
    assert!(report.contains("RS-6-3-1024k"), "{report}");
}

/// A file's groups come a page at a time (a reader asking for one group at a time reads
/// every file whole and across group boundaries; a page fetched after the file was replaced
/// ends the read with `Replaced`), and fsck in pages of one entry adds up to one fsck.
async fn pages_of_groups_and_of_fsck(
    cluster: &LocalCluster,
    c: &Client,
    whole: &raftfs_core::fsck::FsckReport,
) {
    let mut paged = raftfs_core::fsck::FsckReport::default();
    let (mut after, mut pages) = (String::new(), 0);
    loop {
        let (page, next) = c.fsck_page("/", false, &after, 1).await.expect("fsck page");
        assert!(page.files <= 1);
        paged.merge(page);
        pages += 1;
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert!(
        pages > whole.files,
        "{pages} pages for {} files",
        whole.files
    );
    assert_eq!(
        (paged.files, paged.groups, paged.healthy),
        (whole.files, whole.groups, whole.healthy)
    );

    let path = "/RS-6-3-1024k/groups";
    let first = c.get_blocks(path, 0, 0, 3).await.expect("blocks");
    assert_eq!((first.groups.len(), first.more), (3, true));
    assert_eq!(first.readable_length, first.file.length);
    let last = first.groups.last().expect("a group");
    let rest = c
        .get_blocks(path, last.offset + last.length, 0, 3)
        .await
        .expect("blocks");
    assert_eq!((rest.groups.len(), rest.more), (1, false));

    let mut config = ClientConfig::new(cluster.file().meta_addrs());
    config.block_groups_per_fetch = 1;
    let one_by_one = Client::new(config).expect("client");
    for policy in ["REPLICATED-3", "RS-6-3-1024k", "XOR-2-1-1024k"] {
        let path = format!("/{policy}/groups");
        assert_same(
            &read_all(&one_by_one, &path).await,
            &read_all(c, &path).await,
            &path,
        );
    }
    let mut r = FileReader::open(&one_by_one, path).await.expect("open");
    let mut head = vec![0u8; 10];
    r.read_exact(&mut head).await.expect("read the first group");
    let replacement = bytes(4 * 6 * CELL, 5);
    let opts = CreateOptions {
        overwrite: true,
        storage_policy: "RS-6-3-1024k".into(),
        block_size: MIB,
        ..CreateOptions::default()
    };
    let mut w = FileWriter::create(c, path, &opts).await.expect("overwrite");
    w.write_all(&replacement).await.expect("write");
    w.shutdown().await.expect("close");
    r.seek(std::io::SeekFrom::Start(3 * 6 * CELL))
        .await
        .expect("seek");
    let mut rest = Vec::new();
    let err = r
        .read_to_end(&mut rest)
        .await
        .expect_err("a page of the file that replaced it");
    assert!(err.to_string().contains("replaced"), "{err}");
}

/// The internal-block files of group `group` under a blockserver's data directory.
fn block_files(data_dir: &Path, group: u64) -> Vec<PathBuf> {
    let prefix = format!("blk_{group:016x}_");
    common::finalized_files(data_dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && !n.ends_with(".crc"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn degraded_reads_survive_m_dead_blockservers_and_corrupt_blocks() {
    let cluster = data_cluster(9, 3, &[]);
    let c = client(&cluster);
    let ec = bytes(2 * 6 * CELL + 777, 11);
    let rep = bytes(3 * MIB + 5, 12);
    write(&c, "/ec/f", &ec, "RS-6-3-1024k", 0).await;
    write(&c, "/rep/f", &rep, "REPLICATED-3", 0).await;
    wait_healthy(&c, "/").await;

    // A slow (here: stopped) blockserver is read around once its pieces time out.
    let slow = cluster.file().block[0].pid.to_string();
    let stop = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &slow])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {slow}");
    };
    stop("-STOP");
    let mut impatient = ClientConfig::new(cluster.file().meta_addrs());
    impatient.block_read_timeout = Duration::from_millis(500);
    let impatient = Client::new(impatient).expect("client");
    let got = read_all(&impatient, "/ec/f").await;
    stop("-CONT");
    assert_same(&got, &ec, "read around a stopped blockserver");

    // Flip a byte in one internal block on disk: the read still returns the right bytes, the
    // corruption is reported and fsck sees the group degraded.
    let groups = c.get_blocks("/ec/f", 0, 0, 0).await.expect("blocks").groups;
    let group = groups[0].id;
    let file = cluster
        .file()
        .block
        .iter()
        .flat_map(|b| block_files(Path::new(&b.data_dir), group.get()))
        // A data block: a read without failures never touches parity.
        .find(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit('_').next())
                .and_then(|i| i.parse::<u32>().ok())
                .is_some_and(|i| i < 6)
        })
        .expect("a data block file on disk");
    let mut on_disk = std::fs::read(&file).expect("read block");
    on_disk[100] ^= 0xff;
    std::fs::write(&file, &on_disk).expect("corrupt block");
    assert_same(
        &read_all(&c, "/ec/f").await,
        &ec,
        "read around a corrupt block",
    );
    let start = Instant::now();
    loop {
        let r = c.fsck("/ec", false).await.expect("fsck");
        if r.degraded == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the corrupt block was never reported: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Kill m = 3 blockservers: the whole rack of the server with the corrupt block. Each
    // of the 9 servers holds one internal block of every RS-6-3 group, so 6 good ones
    // remain; every replicated block has a replica in each rack, so 2 remain.
    let servers = cluster.file().block;
    let corrupt_rack = servers
        .iter()
        .find(|b| file.starts_with(&b.data_dir))
        .map(|b| b.rack.clone())
        .expect("server of the corrupt block");
    let victims: Vec<u64> = servers
        .iter()
        .filter(|b| b.rack == corrupt_rack)
        .map(|b| b.id)
        .collect();
    assert_eq!(victims.len(), 3);
    for id in &victims {
        cluster.kill_block(*id);
    }
    assert_same(
        &read_all(&c, "/ec/f").await,
        &ec,
        "degraded read, 3 servers dead",
    );
    assert_same(
        &read_all(&c, "/rep/f").await,
        &rep,
        "replicated read, 3 servers dead",
    );
    // Checksums: with data blocks gone, a group is read (decoded) instead of summed.
    let sum = file_checksum(&c, "/ec/f")
        .await
        .expect("checksum, degraded");
    assert_eq!(sum.crc32c, crc32c(&ec));
    assert!(sum.groups_read > 0, "{sum:?}");
    let sum = file_checksum(&c, "/rep/f").await.expect("checksum");
    assert_eq!((sum.crc32c, sum.groups_read), (crc32c(&rep), 0));
    // A fourth loss is one too many for some stripe of RS-6-3: a clear error, not garbage.
    let fourth = cluster
        .file()
        .block
        .iter()
        .map(|b| b.id)
        .find(|id| !victims.contains(id))
        .expect("a live server");
    cluster.kill_block(fourth);
    let mut r = FileReader::open(&c, "/ec/f").await.expect("open");
    let mut sink = Vec::new();
    let err = r.read_to_end(&mut sink).await.expect_err("4 of 9 lost");
    assert!(err.to_string().contains("internal blocks"), "{err}");
}

/// Bytes in the blockservers' temporary block files: what writers have sent and not
/// finalized yet.
fn written_not_finalized(cluster: &LocalCluster) -> u64 {
    let mut total = 0;
    for b in cluster.file().block {
        let tmp = Path::new(&b.data_dir).join("tmp");
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "crc") {
                total += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

/// The feeding end of a [`hanging_writer`]'s FIFO. While it lives the FIFO stays open and the
/// writer waits for more; dropping it closes the FIFO (the writer then sees the end of its
/// input, unless it was killed before).
struct Feed {
    more: std::sync::mpsc::Sender<Vec<u8>>,
}

impl Feed {
    /// Sends `rest` and closes the FIFO: the writer reads to the end and finishes its file.
    fn finish(self, rest: &[u8]) {
        // A feeder that is gone (the writer died and the FIFO broke) has nothing to finish.
        let _ = self.more.send(rest.to_vec());
    }
}

/// A writer of `path` that is a separate `metactl [GLOBAL...] fs put` (internal blocks of
/// `block_size`) reading a FIFO fed with `data[..sent]`, after which the feed hangs (the
/// writer waits for more): the test kills it, or feeds it the rest, when it likes.
fn hanging_writer(
    cluster: &LocalCluster,
    dir: &Path,
    path: &str,
    block_size: u64,
    data: &[u8],
    sent: usize,
    global: &[&str],
) -> (std::process::Child, Feed) {
    let fifo = dir.join("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let writer = Command::new(metactl_bin())
        .args(["--cluster", &cluster.dir_arg()])
        .args(global)
        .args([
            "fs",
            "put",
            "--block-size",
            &block_size.to_string(),
            fifo.to_str().expect("utf8"),
            path,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn put");
    let head = data[..sent].to_vec();
    let (more, chunks) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open fifo");
        let _ = f.write_all(&head);
        // Until the Feed is dropped; then the FIFO closes with `f`.
        for chunk in chunks {
            if f.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    (writer, Feed { more })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_killed_mid_file_is_closed_by_lease_recovery() {
    let cluster = data_cluster(5, 2, &["--lease-secs", "3"]);
    let c = client(&cluster);
    c.mkdir("/w", false).await.expect("mkdir");
    c.set_storage_policy("/w", "RS-3-2-1024k")
        .await
        .expect("policy");
    // Seven groups' worth, then the feed hangs.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = bytes(10 * 3 * CELL, 5);
    let (mut writer, feed) = hanging_writer(
        &cluster,
        dir.path(),
        "/w/f",
        MIB,
        &data,
        7 * 3 * CELL as usize + 1000,
        &[],
    );
    let tmp = "/w/f._COPYING_";
    let start = Instant::now();
    loop {
        if let Ok(st) = c.stat(tmp).await
            && st.block_groups >= 7
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the writer never got 7 groups in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writer.kill().expect("kill -9 the writer");
    let _ = writer.wait();
    drop(feed);
    // The lease (3 s) runs out; the active recovers the file.
    let start = Instant::now();
    let st = loop {
        let st = c.stat(tmp).await.expect("stat");
        if !st.under_construction {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "lease recovery never closed {tmp}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Six full groups were closed by the writer itself; the seventh is cut at what every
    // surviving internal block holds.
    assert!(st.length >= 6 * 3 * CELL, "{st:?}");
    assert_eq!(st.length % (3 * CELL), 0, "whole stripes only: {st:?}");
    assert_same(
        &read_all(&c, tmp).await,
        &data[..st.length as usize],
        "recovered file",
    );
    wait_healthy(&c, "/w").await;
}

/// Issue 17: lease recovery of RS-3-2 on 5 servers, 3 stripes written, the writer killed and
/// two of the group's servers paused (there, answering nothing): the file is closed at the 3
/// stripes, or recovery waits; never shorter. The paused servers' blocks come back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_recovery_with_paused_holders_keeps_every_written_stripe() {
    let cluster = data_cluster(5, 1, &["--lease-secs", "3"]);
    let c = client(&cluster);
    c.mkdir("/w", false).await.expect("mkdir");
    c.set_storage_policy("/w", "RS-3-2-1024k")
        .await
        .expect("policy");
    // Three stripes of the group's four, and a little of the fourth; then the feed hangs.
    let dir = tempfile::tempdir().expect("tempdir");
    let stripe = 3 * CELL;
    let data = bytes(4 * stripe, 9);
    let (mut writer, feed) = hanging_writer(
        &cluster,
        dir.path(),
        "/w/f",
        4 * MIB,
        &data,
        3 * stripe as usize + 1000,
        &[],
    );
    let tmp = "/w/f._COPYING_";
    let start = Instant::now();
    while !c.stat(tmp).await.is_ok_and(|st| st.block_groups >= 1) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no group allocated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The three full stripes reach every server of the group: 3 cells in each of the five
    // internal blocks being written (under `tmp/` until they are finalized).
    let start = Instant::now();
    while written_not_finalized(&cluster) < 5 * 3 * CELL {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the stripes never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writer.kill().expect("kill -9 the writer");
    let _ = writer.wait();
    drop(feed);
    cluster.pause_block(1, true);
    cluster.pause_block(2, true);
    let start = Instant::now();
    let closed = loop {
        let st = c.stat(tmp).await.expect("stat");
        if !st.under_construction {
            break Some(st);
        }
        if start.elapsed() > Duration::from_secs(20) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    cluster.pause_block(1, false);
    cluster.pause_block(2, false);
    let st = match closed {
        Some(st) => st,
        // Recovery waited for the silent servers: it closes the file once they answer.
        None => loop {
            let st = c.stat(tmp).await.expect("stat");
            if !st.under_construction {
                break st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "never recovered: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        },
    };
    assert_eq!(
        st.length,
        3 * stripe,
        "every full stripe, nothing of the partial one: {st:?}"
    );
    assert_same(
        &read_all(&c, tmp).await,
        &data[..st.length as usize],
        "recovered file",
    );
}

/// Where the writer of the test below connects from: a host of its own, which the link proxy
/// cuts off while the test's client (on 127.0.0.1) still reaches the cluster.
const WRITER_HOST: &str = "127.0.1.77";

/// Issue 17, the asymmetric case: lease recovery of RS-3-2 on 5 servers, 3 stripes written,
/// the writer's host cut off from every metaserver by the link proxy. The writer lives on and
/// its streams to the blockservers (not proxied) stay open: the blocks recovery asks about
/// are still being written. The file is closed at the 3 stripes, or recovery waits; never
/// shorter. Fed the rest once the cut heals, the writer fails (its group was recovered under
/// it) and changes nothing of the recovered file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_recovery_with_the_writers_host_cut_off_keeps_every_written_stripe() {
    let cluster = data_cluster(5, 1, &["--lease-secs", "3", "--proxied"]);
    let c = client(&cluster);
    c.mkdir("/w", false).await.expect("mkdir");
    c.set_storage_policy("/w", "RS-3-2-1024k")
        .await
        .expect("policy");
    // The writer acts as a user of its own, so that /w can be closed to it below.
    c.set_permission("/w", 0o777).await.expect("chmod 777");
    let dir = tempfile::tempdir().expect("tempdir");
    let stripe = 3 * CELL;
    let data = bytes(4 * stripe, 17);
    let sent = 3 * stripe as usize + 1000;
    let (mut writer, feed) = hanging_writer(
        &cluster,
        dir.path(),
        "/w/f",
        4 * MIB,
        &data,
        sent,
        &[
            "--source-ip",
            WRITER_HOST,
            "--user",
            "writer",
            // Well inside the 3 s lease: only the cut ends it (the default, 20 s, would not).
            "--lease-renew-every",
            "500ms",
        ],
    );
    let tmp = "/w/f._COPYING_";
    let start = Instant::now();
    while !c.stat(tmp).await.is_ok_and(|st| st.block_groups >= 1) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no group allocated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = Instant::now();
    while written_not_finalized(&cluster) < 5 * 3 * CELL {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the stripes never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past a lease's length with nothing to write, the writer still holds the file: what
    // takes its lease below is the cut, nothing else.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let st = c.stat(tmp).await.expect("stat");
    assert!(st.under_construction, "recovered before any cut: {st:?}");

    let cut: Vec<String> = cluster
        .file()
        .meta
        .iter()
        .map(|m| format!("{WRITER_HOST}-{}", m.id))
        .collect();
    cluster.partition(&cut.join(","));
    let start = Instant::now();
    let closed = loop {
        let st = c
            .stat(tmp)
            .await
            .expect("stat (this client is not cut off)");
        if !st.under_construction {
            break Some(st);
        }
        if start.elapsed() > Duration::from_secs(20) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        writer.try_wait().expect("try_wait").is_none(),
        "the writer did not outlive the cut"
    );
    cluster.partition("");
    let st = match closed {
        Some(st) => st,
        // Recovery waited for the blocks still being written: it closes the file later.
        None => loop {
            let st = c.stat(tmp).await.expect("stat");
            if !st.under_construction {
                break st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "never recovered: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        },
    };
    assert_eq!(
        st.length,
        3 * stripe,
        "every full stripe, nothing of the partial one: {st:?}"
    );
    let recovered = read_all(&c, tmp).await;
    assert_same(&recovered, &data[..st.length as usize], "recovered file");

    // The writer goes on with the rest of its input. On failure `fs put` removes its
    // `._COPYING_` file (as `hdfs dfs -put` does), which would take the evidence with it:
    // /w is closed to the writer's user first, so that removal is refused and what the
    // writer's late bytes did to the file can be read.
    c.set_permission("/w", 0o755).await.expect("chmod 755");
    feed.finish(&data[sent..]);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = writer.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = writer.kill();
            panic!("the writer of a recovered group neither finished nor failed");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut stderr = String::new();
    if let Some(mut e) = writer.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(
        !status.success(),
        "the writer of a recovered group succeeded: {stderr}"
    );
    let after = c.stat(tmp).await.expect("the recovered file stays");
    assert_eq!(
        (after.length, after.under_construction),
        (3 * stripe, false),
        "after the writer's late bytes ({stderr}): {after:?}"
    );
    assert_same(
        &read_all(&c, tmp).await,
        &data[..3 * stripe as usize],
        "recovered file after the writer's late bytes",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_a_clear_error_and_leaves_no_complete_file() {
    // Every blockserver keeps more space in reserve than its disk has.
    let cluster = data_cluster(3, 1, &["--block-reserved-bytes", "1000000000000000"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("in");
    std::fs::write(&local, bytes(3 * MIB, 1)).expect("write");
    let out = cluster.ctl(&["fs", "put", local.to_str().expect("utf8"), "/full"]);
    assert!(!out.status.success(), "put on full disks succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error:") && stderr.contains("no space"),
        "{stderr}"
    );
    let c = client(&cluster);
    assert!(
        c.stat("/full").await.is_err(),
        "no file under the name asked for"
    );
    assert!(
        c.stat("/full._COPYING_").await.is_err(),
        "the partial file is removed"
    );
}

/// Writes `bytes` as internal block `index` of `group` on the blockserver at `addr`, in one
/// finalized message, with `token`.
async fn write_block_at(
    addr: &str,
    group: u64,
    index: u32,
    bytes: &[u8],
    token: &[u8],
) -> Result<u64, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let msg = raftfs_proto::WriteBlockRequest {
        block: Some(raftfs_proto::BlockRef { group, index }),
        data: bytes.to_vec(),
        finalize: true,
        token: token.to_vec(),
    };
    // As the client crate does: the user it runs as, claimed (the token names that user).
    let mut req = tonic::Request::new(tokio_stream::iter(vec![msg]));
    req.metadata_mut().insert(
        raftfs_core::identity::CLAIMED_USER_HEADER,
        raftfs_runtime::process_user().parse().expect("ascii"),
    );
    Ok(
        raftfs_proto::block_data_client::BlockDataClient::new(channel)
            .write_block(req)
            .await?
            .into_inner()
            .length,
    )
}

/// Issue 17, generation stamps: a writer whose lease was recovered comes back with its old
/// write token and writes its group's block, with other bytes, on the target that lacks it
/// (the third server, not a target, refuses). The blockserver takes it (it cannot know), but
/// the block is stamped with the group's old generation: never handed to readers, never
/// counted, and collected; the writer cannot complete the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_writers_late_blocks_are_never_served_and_are_collected() {
    let cluster = data_cluster(3, 1, &["--lease-secs", "3"]);
    let c = client(&cluster);
    let writer = client(&cluster);
    let opts = CreateOptions {
        storage_policy: "REPLICATED-2".into(),
        create_parents: true,
        ..CreateOptions::default()
    };
    writer.create("/s/f", &opts).await.expect("create");
    let (_, group) = writer.add_block("/s/f", 0, &[]).await.expect("add block");
    let token = group.token.0.clone();
    let (first, second) = (&group.targets[0], &group.targets[1]);
    let written = bytes(100_000, 3);
    write_block_at(&first.addr, group.id.get(), 0, &written, &token)
        .await
        .expect("the first replica");
    // The writer goes silent (no renewals: nothing renews a lease but an open FileWriter);
    // the lease runs out and the active recovers the file at the replica that exists.
    let start = Instant::now();
    let st = loop {
        let st = c.stat("/s/f").await.expect("stat");
        if !st.under_construction {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never recovered: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(st.length, written.len() as u64);

    // The stale writer returns with its old token.
    let late = bytes(150_000, 99);
    let third = cluster
        .file()
        .block
        .into_iter()
        .find(|b| b.id != first.node.get() && b.id != second.node.get())
        .expect("a third server");
    // A target that lacks the block cannot tell a stale writer: it takes the block.
    write_block_at(&second.addr, group.id.get(), 0, &late, &token)
        .await
        .expect("a target cannot tell a stale writer");
    // Any other server refuses it: the write token names the group's targets.
    let e = write_block_at(&third.addr, group.id.get(), 0, &late, &token)
        .await
        .expect_err("not a target");
    assert!(e.message().contains("does not allow writes on"), "{e}");
    assert!(
        writer.complete("/s/f", late.len() as u64).await.is_err(),
        "the recovered file cannot be completed by its old writer"
    );
    // Readers get the recovered bytes only (they are never sent to a stale copy; a location
    // on another server is a copy rebuilt from the recovered one).
    for i in 0..20 {
        assert_same(&read_all(&c, "/s/f").await, &written, &format!("read {i}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The stale copies are collected from both servers (the rebuilt copy that may take the
    // same name holds the recovered bytes).
    let name = format!("blk_{:016x}_0", group.id.get());
    let paths: Vec<PathBuf> = cluster
        .file()
        .block
        .into_iter()
        .filter(|b| b.id != first.node.get())
        .map(|b| Path::new(&b.data_dir).join("finalized").join(&name))
        .collect();
    let start = Instant::now();
    while paths
        .iter()
        .any(|p| std::fs::read(p).is_ok_and(|b| b != written))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stale copies never collected: {paths:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The file is whole again (re-replicated from the recovered copy) and still the same.
    wait_healthy(&c, "/s").await;
    assert_same(&read_all(&c, "/s/f").await, &written, "after the sweep");
}
