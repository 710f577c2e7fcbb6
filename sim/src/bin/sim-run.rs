//! `sim-run`: deterministic simulations of a raftfs cluster (`raftfs_sim::simulation`).
//!
//! ```sh
//! sim-run --seed 7                 # one run: its faults, verdict and history digest
//! sim-run --seeds 0..100           # runs per second and the seeds that failed
//! sim-run --seed 7 --history h.edn # the history, to replay or check with `jepsen check`
//! sim-run --seeds 0..100 --observers 1   # with an observer, read after `msync`
//! sim-run --plan partitions-in-turn --seed 0     # sim/tests/maelstrom.rs's scenario
//! sim-run --seeds 0..50 --bug ack-before-fsync   # debug builds: does it find the bug?
//!                                  # (local-reads, ack-before-fsync, reads-without-lease,
//!                                  # stale-observer-reads)
//! ```
//!
//! `RUST_LOG` turns the members' logs on (stderr).
//!
//! Exit status: 0 when every run passed, 1 when one found an anomaly, 2 on bad arguments.

use std::time::Instant;

use raftfs_sim::simulation::{self, Bug, Plan};

struct Args {
    seeds: std::ops::Range<u64>,
    bug: Option<Bug>,
    history: Option<std::path::PathBuf>,
    observers: usize,
    /// `Plan::partitions_in_turn` instead of the standard plan.
    partitions_in_turn: bool,
    verbose: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seeds: 0..1,
        bug: None,
        history: None,
        observers: 0,
        partitions_in_turn: false,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seed" => {
                let s: u64 = value()?.parse().map_err(|e| format!("--seed: {e}"))?;
                args.seeds = s..s + 1;
            }
            "--seeds" => {
                let v = value()?;
                let (a, b) = v
                    .split_once("..")
                    .ok_or_else(|| format!("--seeds {v}: expected A..B"))?;
                let a: u64 = a.parse().map_err(|e| format!("--seeds: {e}"))?;
                let b: u64 = b.parse().map_err(|e| format!("--seeds: {e}"))?;
                args.seeds = a..b;
            }
            "--bug" => {
                let v = value()?;
                args.bug = Some(Bug::parse(&v).ok_or_else(|| {
                    let names: Vec<_> = Bug::ALL.iter().map(|b| b.name()).collect();
                    format!("--bug {v}: one of {}", names.join(", "))
                })?);
            }
            // With several seeds, the last one's.
            "--history" => args.history = Some(value()?.into()),
            "--observers" => {
                args.observers = value()?.parse().map_err(|e| format!("--observers: {e}"))?;
            }
            "--plan" => match value()?.as_str() {
                "standard" => args.partitions_in_turn = false,
                "partitions-in-turn" => args.partitions_in_turn = true,
                v => return Err(format!("--plan {v}: standard or partitions-in-turn")),
            },
            "-v" | "--verbose" => args.verbose = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn main() {
    // Logs only when asked (`RUST_LOG=info`): a seed replays exactly, with its logs.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sim-run: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let (mut runs, mut failed) = (0u64, Vec::new());
    for seed in args.seeds.clone() {
        let base = if args.partitions_in_turn {
            Plan::partitions_in_turn(seed)
        } else {
            Plan::standard(seed)
        };
        let plan = Plan {
            bug: args.bug,
            observers: args.observers,
            ..base
        };
        let one = Instant::now();
        runs += 1;
        match simulation::run(&plan) {
            Ok(report) => {
                if args.verbose || args.seeds.end - args.seeds.start == 1 {
                    for f in &report.faults {
                        println!("seed {seed}: {f}");
                    }
                }
                println!(
                    "seed {seed}: {} ({} ok, {} indeterminate, {:.1} s simulated in {:.1} s; checker {} configurations) sha256 {}",
                    if report.passed() { "valid" } else { "INVALID" },
                    report.ok,
                    report.info,
                    report.simulated.as_secs_f64(),
                    one.elapsed().as_secs_f64(),
                    report.search.cost.configurations,
                    report.digest,
                );
                if !report.search.verdict.is_valid() {
                    println!("seed {seed}: {:?}", report.search.verdict);
                }
                for p in &report.panics {
                    println!("seed {seed}: a panic: {p}");
                }
                if !report.passed() {
                    failed.push(seed);
                }
                if let Some(path) = &args.history
                    && let Err(e) = std::fs::write(path, &report.history)
                {
                    eprintln!("sim-run: writing {}: {e}", path.display());
                }
            }
            Err(e) => {
                println!("seed {seed}: FAILED: {e}");
                failed.push(seed);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{runs} runs in {secs:.1} s ({:.2} runs/s), {} failed{}",
        runs as f64 / secs,
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": seeds {failed:?}")
        }
    );
    std::process::exit(i32::from(!failed.is_empty()));
}
