//! `jepsen`: runs a test against a local cluster under faults (`jepsen run`) and checks
//! recorded histories (`jepsen check`). Exit status: 0 valid, 1 invalid or error, 2 unknown.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use raftfs_jepsen::checker::Verdict;
use raftfs_jepsen::{ModelName, check_text_from};

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
        /// The registers' first value, in EDN (`cas-register`, `kv`): `0` as the Knossos
        /// corpus is checked, `nil` for Knossos's `(cas-register)` without an argument (the
        /// histories of Jepsen's own etcd tests).
        #[arg(long, default_value = "0", value_parser = parse_edn)]
        initial: edn_format::Value,
        history: PathBuf,
    },
    /// Prints a generated cas-register history (Jepsen's `history.edn` form), valid by
    /// construction, with many indeterminate operations: the checkers' stress set.
    Generate {
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Operations invoked.
        #[arg(long, default_value_t = 300)]
        ops: usize,
        /// Processes running at once.
        #[arg(long, default_value_t = 9)]
        processes: usize,
        /// Share of writes and compare-and-sets whose process crashes (`:info`).
        #[arg(long, default_value_t = 0.1)]
        crash_ratio: f64,
        /// Values are drawn from 0..VALUES.
        #[arg(long, default_value_t = 5)]
        values: i64,
        /// Make it invalid: one read sees a value never written.
        #[arg(long)]
        corrupt: bool,
    },
}

/// One EDN value from the command line.
fn parse_edn(s: &str) -> Result<edn_format::Value, String> {
    edn_format::parse_str(s).map_err(|e| format!("not an EDN value: {e:?}"))
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
        Cmd::Generate {
            seed,
            ops,
            processes,
            crash_ratio,
            values,
            corrupt,
        } => {
            anyhow::ensure!(
                processes > 0 && (0.0..=1.0).contains(&crash_ratio) && values > 0,
                "--processes and --values must be positive, --crash-ratio within 0..=1"
            );
            let shape = raftfs_jepsen::generate::Shape {
                ops,
                processes,
                crash_ratio,
                values,
            };
            let mut events = raftfs_jepsen::generate::cas_register(seed, shape);
            if corrupt {
                raftfs_jepsen::generate::corrupt(&mut events, seed, shape)
                    .context("the history has no read to corrupt")?;
            }
            print!("{}", raftfs_jepsen::generate::to_edn(&events));
            Ok(0)
        }
        Cmd::Check {
            model,
            time_limit,
            json,
            initial,
            history,
        } => {
            let text = std::fs::read_to_string(&history)
                .with_context(|| format!("reading {}", history.display()))?;
            let search = check_text_from(&text, model, time_limit, &initial)
                .with_context(|| format!("checking {}", history.display()))?;
            let cost = search.cost;
            if json {
                let mut out = serde_json::to_value(&search.verdict)?;
                out["cost"] = serde_json::to_value(cost)?;
                println!("{out}");
            } else {
                match &search.verdict {
                    Verdict::Valid => println!("valid"),
                    Verdict::Invalid { op } => println!("invalid: {op}"),
                    Verdict::Unknown { reason } => println!("unknown: {reason}"),
                }
                // On stderr, so that the verdict stays the first line of the output.
                eprintln!(
                    "cost: {} configurations explored in {:.3} s",
                    cost.configurations, cost.seconds
                );
            }
            Ok(exit_code(&search.verdict))
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
