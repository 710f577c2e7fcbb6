//! A local cluster of real metaserver processes for integration tests, started and stopped
//! through `metactl local` exactly as a developer would.

#![allow(dead_code)]

pub mod dial;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use raftfs_client::discovery::ClusterFile;
use raftfs_client::{
    AutoMsync, Client, ClientConfig, CreateOptions, FileKind, FileReader, FileWriter, ReadMode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn metactl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_metactl")
}

/// `loadgen` beside this test's `metactl` (both built into the same target directory; the
/// loadgen crate's own test makes `cargo test --workspace` build it).
pub fn loadgen_bin() -> PathBuf {
    let path = Path::new(metactl_bin()).with_file_name("loadgen");
    assert!(
        path.exists(),
        "{} not found: cargo build --workspace",
        path.display()
    );
    path
}

/// `metactl-next` (metactl with the `next-format` feature: the rolling-upgrade tests' new
/// version, DESIGN §11), built into this test's target directory and profile if it is not
/// there or is older than the sources (cargo decides).
pub fn metactl_next_bin() -> PathBuf {
    let metactl = Path::new(metactl_bin());
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-p", "raftfs-metactl", "--bin", "metactl-next"])
        .args(["--features", "next-format"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if metactl
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "release")
    {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building metactl-next: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = metactl.with_file_name("metactl-next");
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// Files `loadgen meta --op create --roots ROOT` made under `root` (each run's directories,
/// each directory's files).
pub async fn created_under(client: &Client, root: &str) -> u64 {
    let mut n = 0;
    for run in client.list(root).await.expect("list") {
        let run = format!("{root}/{}", run.name);
        for d in client.list(&run).await.expect("list run") {
            n += client
                .list(&format!("{run}/{}", d.name))
                .await
                .expect("list dir")
                .len() as u64;
        }
    }
    n
}

/// Runs `metactl ARGS` and returns its output.
pub fn metactl(args: &[&str]) -> Output {
    Command::new(metactl_bin())
        .args(args)
        .output()
        .expect("run metactl")
}

pub struct LocalCluster {
    pub dir: tempfile::TempDir,
}

impl LocalCluster {
    pub fn up(voters: u32, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf8 dir").to_owned();
        let voters = voters.to_string();
        let mut args = vec!["local", "up", "--dir", &d, "--voters", &voters, "--detach"];
        args.extend_from_slice(extra);
        let out = metactl(&args);
        assert!(
            out.status.success(),
            "local up failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            Self::logs(dir.path())
        );
        Self { dir }
    }

    pub fn logs(dir: &Path) -> String {
        let mut all = String::new();
        for i in 1..=8 {
            if let Ok(s) = std::fs::read_to_string(dir.join(format!("meta-{i}/metaserver.log"))) {
                let tail: Vec<&str> = s.lines().rev().take(30).collect();
                all.push_str(&format!("--- meta-{i} (last lines) ---\n"));
                for l in tail.into_iter().rev() {
                    all.push_str(l);
                    all.push('\n');
                }
            }
        }
        for i in 1..=16 {
            if let Ok(s) = std::fs::read_to_string(dir.join(format!("block-{i}/blockserver.log"))) {
                let tail: Vec<&str> = s.lines().rev().take(15).collect();
                all.push_str(&format!("--- block-{i} (last lines) ---\n"));
                for l in tail.into_iter().rev() {
                    all.push_str(l);
                    all.push('\n');
                }
            }
        }
        all
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn dir_arg(&self) -> String {
        self.path().to_str().expect("utf8").to_owned()
    }

    pub fn file(&self) -> ClusterFile {
        ClusterFile::read(self.path()).expect("cluster.json")
    }

    /// The settings of a client of this cluster: its tools' (the superuser's certificate) on
    /// a TLS cluster.
    pub fn client_config(&self) -> ClientConfig {
        let file = self.file();
        let mut c = ClientConfig::new(file.meta_addrs());
        c.tls = file.client_tls().expect("the cluster's TLS files");
        c.failover_deadline = Duration::from_secs(30);
        c
    }

    pub fn client(&self) -> Client {
        Client::new(self.client_config()).expect("client")
    }

    /// A client reading in `mode`; a paused observer is given up on after 500 ms.
    pub fn client_with(&self, mode: ReadMode, auto_msync: AutoMsync) -> Client {
        let mut c = self.client_config();
        c.read_mode = mode;
        c.auto_msync = auto_msync;
        c.observer_timeout = Duration::from_millis(500);
        Client::new(c).expect("client")
    }

    /// Ids of the members `cluster.json` lists with `role`.
    pub fn ids(&self, role: &str) -> Vec<u64> {
        self.file()
            .meta
            .iter()
            .filter(|m| m.role == role)
            .map(|m| m.id)
            .collect()
    }

    /// SIGSTOP: the process stays, answers nothing (a hung server, or one cut off).
    pub fn pause(&self, id: u64) {
        signal(self.pid_of(id), "-STOP");
    }

    /// SIGCONT after [`LocalCluster::pause`].
    pub fn resume(&self, id: u64) {
        signal(self.pid_of(id), "-CONT");
    }

    /// SIGSTOP (`stop = true`) or SIGCONT of blockserver `id`: a server that is there and
    /// answers nothing.
    pub fn pause_block(&self, id: u64, stop: bool) {
        signal(self.block_pid(id), if stop { "-STOP" } else { "-CONT" });
    }

    /// The pid of blockserver `id`, from `cluster.json`.
    pub fn block_pid(&self, id: u64) -> u32 {
        self.file()
            .block
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.pid)
            .expect("blockserver in cluster.json")
    }

    /// `metactl local add-observer`: one more metaserver, added as an observer; its id.
    pub fn add_observer(&self, extra: &[&str]) -> u64 {
        let d = self.dir_arg();
        let mut args = vec!["local", "add-observer", "--dir", d.as_str()];
        args.extend_from_slice(extra);
        let out = metactl(&args);
        assert!(
            out.status.success(),
            "add-observer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("observer id")
    }

    /// `metactl --cluster DIR ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let d = self.dir_arg();
        let mut all = vec!["--cluster", d.as_str()];
        all.extend_from_slice(args);
        metactl(&all)
    }

    /// `metactl local partition --cut SPEC` (`--heal` when `spec` is empty) on a cluster
    /// started with `--proxied`.
    pub fn partition(&self, spec: &str) {
        let d = self.dir_arg();
        let mut args = vec!["local", "partition", "--dir", d.as_str()];
        if spec.is_empty() {
            args.push("--heal");
        } else {
            args.extend(["--cut", spec]);
        }
        let out = metactl(&args);
        assert!(
            out.status.success(),
            "partition: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn pid_of(&self, id: u64) -> u32 {
        self.file()
            .meta
            .iter()
            .find(|m| m.id == id)
            .expect("member")
            .pid
    }

    pub fn addr_of(&self, id: u64) -> String {
        self.file()
            .meta
            .iter()
            .find(|m| m.id == id)
            .expect("member")
            .addr
            .clone()
    }

    pub fn data_dir_of(&self, id: u64) -> PathBuf {
        PathBuf::from(
            &self
                .file()
                .meta
                .iter()
                .find(|m| m.id == id)
                .expect("member")
                .data_dir,
        )
    }

    /// SIGKILL of one metaserver.
    pub fn kill(&self, id: u64) {
        let out = self.ctl(&[
            "local",
            "stop",
            "--dir",
            &self.dir_arg(),
            "--id",
            &id.to_string(),
            "--kill",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = self.pid_of(id);
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists()
            && start.elapsed() < Duration::from_secs(10)
        {
            // a killed child of nobody lingers as a zombie until reaped by init; /proc/PID/stat says Z
            if std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL of one blockserver; returns once it is gone.
    pub fn kill_block(&self, id: u64) {
        let pid = self.block_pid(id);
        signal(pid, "-KILL");
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z"))
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop of one metaserver.
    pub fn stop(&self, id: u64) {
        let out = self.ctl(&[
            "local",
            "stop",
            "--dir",
            &self.dir_arg(),
            "--id",
            &id.to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start(&self, id: u64) {
        let out = self.ctl(&[
            "local",
            "start",
            "--dir",
            &self.dir_arg(),
            "--id",
            &id.to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn signal(pid: u32, sig: &str) {
    let out = Command::new("kill")
        .args([sig, &pid.to_string()])
        .output()
        .expect("kill");
    assert!(out.status.success(), "kill {sig} {pid}");
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // A paused member would ignore SIGTERM until SIGKILL; let everyone run first.
        for m in self.file().meta {
            let _ = Command::new("kill")
                .args(["-CONT", &m.pid.to_string()])
                .output();
        }
        let d = self.dir_arg();
        let _ = metactl(&["local", "down", "--dir", &d]);
        if std::thread::panicking() {
            eprintln!("{}", Self::logs(self.path()));
            // Keep the failed cluster's data and logs for a post-mortem.
            let kept = std::env::temp_dir().join(format!(
                "raftfs-failed-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |t| t.as_millis())
            ));
            let copied = Command::new("cp")
                .arg("-a")
                .arg(self.path())
                .arg(&kept)
                .status()
                .is_ok_and(|s| s.success());
            if copied {
                eprintln!(
                    "the failed cluster's directory is kept at {}",
                    kept.display()
                );
            }
        }
    }
}

/// The whole tree under `/`, as (path, kind, permission, length), for before/after checks.
pub async fn snapshot_tree(client: &Client) -> Vec<(String, FileKind, u32, u64)> {
    let mut out = Vec::new();
    let mut stack = vec!["/".to_owned()];
    while let Some(dir) = stack.pop() {
        for e in client.list(&dir).await.expect("list") {
            let p = if dir == "/" {
                format!("/{}", e.name)
            } else {
                format!("{dir}/{}", e.name)
            };
            if e.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, e.kind, e.permission, e.length));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The `/metrics` address of blockserver `id` of a local cluster (from its config file).
pub fn block_metrics_addr(cluster: &LocalCluster, id: u64) -> Option<String> {
    let text = std::fs::read_to_string(cluster.path().join(format!("block-{id}/blockserver.toml")))
        .ok()?;
    let value: toml::Value = toml::from_str(&text).ok()?;
    value
        .get("metrics-addr")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// A plain HTTP/1.0 GET of `path` on `addr`; the body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

/// Every file a blockserver has finalized under `data_dir` (block data and checksum files).
pub fn finalized_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.parent().and_then(|d| d.file_name()) == Some("finalized".as_ref()) {
                out.push(p);
            }
        }
    }
    out
}

/// `len` bytes that differ with `seed` and along the file (a misplaced block shows).
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// Writes `data` to a new file `path` of storage policy `policy`, and closes it.
pub async fn put_file(c: &Client, path: &str, policy: &str, data: &[u8]) {
    let opts = CreateOptions {
        storage_policy: policy.into(),
        ..CreateOptions::default()
    };
    let mut w = FileWriter::create(c, path, &opts).await.expect("create");
    w.write_all(data).await.expect("write");
    w.shutdown().await.expect("close");
}

/// The whole of file `path`.
pub async fn get_file(c: &Client, path: &str) -> Vec<u8> {
    let mut r = FileReader::open(c, path).await.expect("open");
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.expect("read");
    out
}

/// The sum, over the blockservers of rack `rack` (or of every rack), of the metric lines that
/// start with `metric` and contain `label`.
pub fn block_counter(cluster: &LocalCluster, rack: Option<&str>, metric: &str, label: &str) -> u64 {
    let mut total = 0u64;
    for b in cluster
        .file()
        .block
        .iter()
        .filter(|b| rack.is_none_or(|r| b.rack == r))
    {
        let Some(addr) = block_metrics_addr(cluster, b.id) else {
            continue;
        };
        let Ok(text) = http_get(&addr, "/metrics") else {
            continue;
        };
        for line in text.lines() {
            if line.starts_with(metric) && line.contains(label) {
                total += line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0) as u64;
            }
        }
    }
    total
}

/// Waits until `live` blockservers are live (the dead ones declared dead) and every group
/// is healthy.
pub async fn wait_healthy(
    c: &Client,
    live: u64,
    within: Duration,
) -> raftfs_core::fsck::FsckReport {
    let start = Instant::now();
    loop {
        let r = c.fsck("/", false).await.expect("fsck");
        if r.live_blockservers == live && r.degraded == 0 && r.missing == 0 {
            return r;
        }
        assert!(start.elapsed() < within, "never healthy again: {r:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Bytes the blockservers of rack `to` read from rack `from` for rebuilds, whatever pool.
pub fn crossing(cluster: &LocalCluster, from: &str, to: &str) -> u64 {
    block_counter(
        cluster,
        Some(to),
        "raftfs_block_reconstruction_read_bytes_total",
        &format!("from_rack=\"{from}\""),
    )
}
