//! `loadgen`: NNThroughputBenchmark-style load for raftfs, and the same load against etcd,
//! printing throughput and latency percentiles (text, or one JSON object with `--json`).

mod data;
mod etcd;
mod meta;
mod report;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use raftfs_client::{AutoMsync, ReadMode};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// raftfs reads: `active` or `observer`.
    #[arg(long, global = true, default_value = "active")]
    read_mode: ReadMode,
    /// raftfs reads in observer mode: msync `never`, `always` or when older than a period.
    #[arg(long, global = true, default_value = "never")]
    auto_msync: AutoMsync,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Metadata operations against raftfs.
    Meta {
        #[arg(long, value_enum)]
        op: meta::MetaOp,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 10_000)]
        ops: u64,
        /// Files per directory of the prepared tree.
        #[arg(long, default_value_t = 1000)]
        files_per_dir: u64,
        /// Metaserver addresses, comma-separated (or RAFTFS_META).
        #[arg(long)]
        meta: Option<String>,
        /// A local cluster's directory (DIR/cluster.json).
        #[arg(long)]
        cluster: Option<PathBuf>,
    },
    /// Streaming file writes and reads against raftfs (or the local disk, `--op disk`).
    Data {
        #[arg(long, value_enum)]
        op: data::DataOp,
        /// Storage policy of the files.
        #[arg(long, default_value = "REPLICATED-3")]
        policy: String,
        /// Total bytes, split over the clients' files (e.g. 1GiB).
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        size: u64,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// degraded-read: blockservers of one rack to kill first.
        #[arg(long, default_value_t = 3)]
        kill: usize,
        /// disk: where to write.
        #[arg(long, default_value = "loadgen-disk")]
        disk_dir: PathBuf,
        #[arg(long)]
        meta: Option<String>,
        #[arg(long)]
        cluster: Option<PathBuf>,
    },
    /// The same load against etcd (the peer).
    Etcd {
        #[arg(long, value_enum)]
        op: etcd::EtcdOp,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 10_000)]
        ops: u64,
        /// etcd client endpoints, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        endpoints: Vec<String>,
        /// Serializable (not linearizable) gets.
        #[arg(long)]
        serializable: bool,
        #[arg(long, default_value_t = 256)]
        value_size: usize,
    },
}

/// `1GiB`, `512MiB`, `4096` (bytes).
fn parse_size(s: &str) -> Result<u64, String> {
    let units = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
        .unwrap_or((s, 1));
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("bad size {s:?} (e.g. 1GiB, 256MiB, 4096)"))
}

async fn run(cli: Cli) -> Result<()> {
    let progress = !cli.json;
    let report = match cli.command {
        Cmd::Meta {
            op,
            clients,
            ops,
            files_per_dir,
            meta,
            cluster,
        } => {
            let metas = raftfs_client::discovery::resolve(meta.as_deref(), cluster.as_deref())?;
            meta::run(meta::MetaLoad {
                op,
                clients,
                ops,
                metas,
                files_per_dir,
                progress,
                read_mode: cli.read_mode,
                auto_msync: cli.auto_msync,
            })
            .await?
        }
        Cmd::Data {
            op,
            policy,
            size,
            clients,
            kill,
            disk_dir,
            meta,
            cluster,
        } => {
            let metas = if op == data::DataOp::Disk {
                Vec::new()
            } else {
                raftfs_client::discovery::resolve(meta.as_deref(), cluster.as_deref())?
            };
            data::run(data::DataLoad {
                op,
                policy,
                size,
                clients,
                metas,
                cluster,
                kill,
                disk_dir,
                progress,
            })
            .await?
        }
        Cmd::Etcd {
            op,
            clients,
            ops,
            endpoints,
            serializable,
            value_size,
        } => {
            etcd::run(etcd::EtcdLoad {
                op,
                clients,
                ops,
                endpoints,
                serializable,
                value_size,
                progress,
            })
            .await?
        }
    };
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report.print_text();
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
