//! `jepsen`: runs a test against a local cluster under faults (`jepsen run`) and checks
//! recorded histories (`jepsen check`). Exit status: 0 valid, 1 invalid or error, 2 unknown.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use raftfs_jepsen::checker::Verdict;
use raftfs_jepsen::{ModelName, check_text};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Starts a local cluster, runs a workload under faults, records and checks the history.
    Run(Box<raftfs_jepsen::run::RunOptions>),
    /// Checks a stored history (Jepsen or Knossos EDN) against a model.
    Check {
        #[arg(long, value_enum)]
        model: ModelName,
        /// Give up (verdict `unknown`) after this long.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        time_limit: Duration,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        history: PathBuf,
    },
}

fn exit_code(verdict: &Verdict) -> i32 {
    match verdict {
        Verdict::Valid => 0,
        Verdict::Invalid { .. } => 1,
        Verdict::Unknown { .. } => 2,
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Cmd::Run(opts) => {
            let runtime = tokio::runtime::Runtime::new()?;
            let (results, store) = runtime.block_on(raftfs_jepsen::run::run(*opts))?;
            print!("{}", raftfs_jepsen::run::summary(&results, &store));
            Ok(exit_code(&results.valid))
        }
        Cmd::Check {
            model,
            time_limit,
            json,
            history,
        } => {
            let text = std::fs::read_to_string(&history)
                .with_context(|| format!("reading {}", history.display()))?;
            let verdict = check_text(&text, model, time_limit)
                .with_context(|| format!("checking {}", history.display()))?;
            if json {
                println!("{}", serde_json::to_string(&verdict)?);
            } else {
                match &verdict {
                    Verdict::Valid => println!("valid"),
                    Verdict::Invalid { op } => println!("invalid: {op}"),
                    Verdict::Unknown { reason } => println!("unknown: {reason}"),
                }
            }
            Ok(exit_code(&verdict))
        }
    }
}

fn main() {
    match run(Cli::parse()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
