//! `fleet-sim`: runs the fleet simulator (crate `raftfs-fleet`) and prints what it measured
//! as JSON.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    about = "The active's real placement, scan, scheduler and budgets against a simulated fleet"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The rebuild benchmark's three runs (bench/rebuild.sh) in simulation, averaged over
    /// seeds, beside the real system's figures.
    Calibrate {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 10)]
        seeds: u64,
    },
    /// One run of the rebuild benchmark's cluster, with everything it measured.
    BenchRun {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// rack-aware, random or budget.
        #[arg(long, default_value = "budget")]
        run: String,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Calibrate { seed, seeds } => {
            let c = raftfs_fleet::calibration::calibrate(seed, seeds)?;
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        Command::BenchRun { seed, run } => {
            use raftfs_fleet::calibration::Run;
            let run = match run.as_str() {
                "rack-aware" => Run::RackAware,
                "random" => Run::Random,
                "budget" => Run::Budget,
                other => anyhow::bail!("unknown run {other}: rack-aware, random or budget"),
            };
            let o = raftfs_fleet::calibration::run(seed, run)?;
            println!("{}", serde_json::to_string_pretty(&o)?);
        }
    }
    Ok(())
}
