//! `loadgen data`: streaming throughput of the data path, and of the local disk it runs on.
//!
//! `--size` bytes in total are split over `--clients` files, one per client, each written
//! (or read) as one operation: `write` creates them under `/loadgen-data/<policy>/`, `read`
//! reads them back and checks every byte, `degraded-read` first kills `--kill` blockservers
//! of the local cluster (all in one rack, as a rack loss) and then reads, and `disk` writes
//! the same bytes with the same concurrency into local files (fsynced), the bandwidth the
//! EC write goal is stated against. Every run reports MB/s (10^6 bytes per second) besides
//! the per-file latencies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use raftfs_client::discovery::ClusterFile;
use raftfs_client::{Client, ClientConfig, ClientTls, CreateOptions, FileReader, FileWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::{self, Report};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataOp {
    Write,
    Read,
    DegradedRead,
    Disk,
}

/// One data load.
#[derive(Debug, Clone)]
pub struct DataLoad {
    pub op: DataOp,
    pub policy: String,
    pub size: u64,
    pub clients: usize,
    pub metas: Vec<String>,
    /// The cluster's TLS settings (`cluster.json` of a `local up --tls` cluster).
    pub tls: Option<ClientTls>,
    pub cluster: Option<PathBuf>,
    pub kill: usize,
    pub disk_dir: PathBuf,
    pub progress: bool,
}

/// Bytes written per call: whole stripes of every policy raftfs has.
const CHUNK: usize = 4 << 20;

fn pattern(file: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((offset + i) as u8) ^ (file as u8).wrapping_mul(31))
        .collect()
}

fn path_of(policy: &str, file: u64) -> String {
    format!("/loadgen-data/{policy}/c{file}")
}

fn per_file(load: &DataLoad) -> u64 {
    load.size / load.clients.max(1) as u64
}

/// Runs the load.
pub async fn run(load: DataLoad) -> Result<Report> {
    if load.clients == 0 || load.size == 0 {
        bail!("--clients and --size must be > 0");
    }
    let per_file = per_file(&load);
    let states: Vec<u64> = (0..load.clients as u64).collect();
    let name = match load.op {
        DataOp::Write => format!("write {}", load.policy),
        DataOp::Read => format!("read {}", load.policy),
        DataOp::DegradedRead => format!(
            "degraded-read {} ({} blockservers dead)",
            load.policy, load.kill
        ),
        DataOp::Disk => format!("disk write {}", load.disk_dir.display()),
    };
    let mut report = match load.op {
        DataOp::Disk => {
            std::fs::create_dir_all(&load.disk_dir)?;
            let dir = Arc::new(load.disk_dir.clone());
            report::run(
                "local",
                &name,
                states,
                load.clients as u64,
                load.progress,
                move |file, _| {
                    let dir = dir.clone();
                    async move {
                        disk_write(&dir, *file, per_file)
                            .await
                            .map_err(|e| format!("{e:#}"))
                    }
                },
            )
            .await
        }
        DataOp::Write | DataOp::Read | DataOp::DegradedRead => {
            let mut config = ClientConfig::new(load.metas.clone());
            config.tls.clone_from(&load.tls);
            config.block_read_timeout = std::time::Duration::from_secs(5);
            let client = Client::new(config)?;
            if load.op == DataOp::Write {
                client
                    .mkdir(&format!("/loadgen-data/{}", load.policy), true)
                    .await?;
            }
            if load.op == DataOp::DegradedRead {
                kill_a_rack(load.cluster.as_deref(), load.kill)?;
            }
            let client = Arc::new(client);
            let (op, policy) = (load.op, load.policy.clone());
            report::run(
                "raftfs",
                &name,
                states,
                load.clients as u64,
                load.progress,
                move |file, _| {
                    let (client, policy) = (client.clone(), policy.clone());
                    async move {
                        let r = match op {
                            DataOp::Write => write(&client, &policy, *file, per_file).await,
                            _ => read(&client, &policy, *file, per_file).await,
                        };
                        r.map_err(|e| format!("{e:#}"))
                    }
                },
            )
            .await
        }
    };
    let bytes = per_file.saturating_mul(report.ops - report.errors);
    report.mb_per_sec = Some(bytes as f64 / 1e6 / report.seconds.max(f64::EPSILON));
    Ok(report)
}

async fn write(client: &Client, policy: &str, file: u64, len: u64) -> Result<()> {
    let opts = CreateOptions {
        overwrite: true,
        storage_policy: policy.to_owned(),
        ..CreateOptions::default()
    };
    let mut w = FileWriter::create(client, &path_of(policy, file), &opts).await?;
    let mut at = 0u64;
    while at < len {
        let n = CHUNK.min(usize::try_from(len - at).unwrap_or(CHUNK));
        w.write_all(&pattern(file, at, n)).await?;
        at += n as u64;
    }
    w.shutdown().await?;
    Ok(())
}

async fn read(client: &Client, policy: &str, file: u64, len: u64) -> Result<()> {
    let path = path_of(policy, file);
    let mut r = FileReader::open(client, &path).await?;
    if r.len() != len {
        bail!(
            "{path}: {} bytes, expected {len} (run --op write first)",
            r.len()
        );
    }
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < len {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            bail!("{path}: ended at {at} of {len}");
        }
        if buf[..n] != pattern(file, at, n)[..] {
            bail!("{path}: wrong bytes in {at}..{}", at + n as u64);
        }
        at += n as u64;
    }
    Ok(())
}

async fn disk_write(dir: &Path, file: u64, len: u64) -> Result<()> {
    let path = dir.join(format!("c{file}"));
    let mut f = tokio::fs::File::create(&path)
        .await
        .with_context(|| format!("create {}", path.display()))?;
    let mut at = 0u64;
    while at < len {
        let n = CHUNK.min(usize::try_from(len - at).unwrap_or(CHUNK));
        f.write_all(&pattern(file, at, n)).await?;
        at += n as u64;
    }
    f.sync_all().await?;
    drop(f);
    tokio::fs::remove_file(&path).await?;
    Ok(())
}

/// SIGKILLs `n` blockservers of the local cluster, all from the first rack (a rack loss).
fn kill_a_rack(cluster: Option<&Path>, n: usize) -> Result<()> {
    let Some(dir) = cluster else {
        bail!("degraded-read needs --cluster DIR (the blockservers to stop)");
    };
    let file = ClusterFile::read(dir)?;
    let Some(rack) = file.block.first().map(|b| b.rack.clone()) else {
        bail!("{}: no blockservers", dir.display());
    };
    let victims: Vec<_> = file
        .block
        .iter()
        .filter(|b| b.rack == rack)
        .take(n)
        .collect();
    if victims.len() < n {
        bail!(
            "rack {rack} has {} blockservers, fewer than --kill {n}",
            victims.len()
        );
    }
    for b in victims {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(b.pid).context("pid")?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)
            .with_context(|| format!("kill blockserver {}", b.id))?;
        eprintln!("killed blockserver {} (rack {rack})", b.id);
    }
    Ok(())
}
