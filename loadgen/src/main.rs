//! `loadgen`: NNThroughputBenchmark-style load for raftfs, and the same load against etcd,
//! printing throughput and latency percentiles (text, or one JSON object with `--json`).

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
