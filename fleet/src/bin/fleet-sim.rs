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
    /// A fleet of any size: placed, reported, run for `--seconds` of simulated time with
    /// its faults; prints what it measured, and the real code's CPU time and memory.
    Run(Box<RunArgs>),
    /// One run of the rebuild benchmark's cluster, with everything it measured.
    BenchRun {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// rack-aware, random or budget.
        #[arg(long, default_value = "budget")]
        run: String,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 1_000)]
    servers: usize,
    #[arg(long, default_value_t = 20)]
    racks: usize,
    #[arg(long, default_value_t = 1)]
    datacenters: usize,
    /// Block groups, half RS-6-3-1024k and half REPLICATED-3 (`--rs-share`).
    #[arg(long, default_value_t = 100_000)]
    groups: u64,
    /// Of the groups, the share that is RS-6-3-1024k.
    #[arg(long, default_value_t = 0.5)]
    rs_share: f64,
    /// Each group's length is uniform in [MIN, MAX] MiB.
    #[arg(long, default_value_t = 1)]
    min_mib: u64,
    #[arg(long, default_value_t = 64)]
    max_mib: u64,
    /// Simulated seconds to run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Kill every server of this rack (by name) at `--at` seconds.
    #[arg(long)]
    kill_rack: Option<String>,
    /// Kill this many servers (the first of as many racks) at `--at` seconds.
    #[arg(long, default_value_t = 0)]
    kill_servers: usize,
    #[arg(long, default_value_t = 20)]
    at: u64,
    /// Random targets and sources (the baseline).
    #[arg(long)]
    rack_blind: bool,
    /// Budgets from the start: `FROM:TO=MBPS` between racks.
    #[arg(long)]
    rack_pair: Vec<String>,
    /// Budgets from the start: `FROM:TO=MBPS` between datacenters.
    #[arg(long)]
    dc_pair: Vec<String>,
    /// A budget change at this second: `--change-rack-pair` and `--change-dc-pair` (a pair
    /// set to 0 is removed).
    #[arg(long)]
    change_at: Option<u64>,
    #[arg(long)]
    change_rack_pair: Vec<String>,
    #[arg(long)]
    change_dc_pair: Vec<String>,
    /// Decommission every server of this rack (by name) at `--at` seconds.
    #[arg(long)]
    decommission_rack: Option<String>,
    /// Lose the link between two datacenters (`dc1:dc2`) at `--link-down-at` for
    /// `--link-down-for` seconds.
    #[arg(long)]
    link_down: Option<String>,
    #[arg(long, default_value_t = 0)]
    link_down_at: u64,
    #[arg(long, default_value_t = 3600)]
    link_down_for: u64,
    /// Plant a bug in the simulated blockservers, to see the checks fail:
    /// `unweighted-xmits` (a task gives back 1 xmit, not its weight) or `ignore-budgets`.
    #[cfg(feature = "bug-switches")]
    #[arg(long)]
    bug: Vec<String>,
    /// Leave out the per-second series from the output.
    #[arg(long)]
    summary: bool,
}

fn pairs(specs: &[String]) -> anyhow::Result<Vec<(String, String, u64)>> {
    specs
        .iter()
        .map(|s| {
            let (pair, mbps) = s
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("{s}: FROM:TO=MBPS"))?;
            let (from, to) = pair
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("{s}: FROM:TO=MBPS"))?;
            let mbps: f64 = mbps.parse()?;
            Ok((from.to_owned(), to.to_owned(), (mbps * 1e6) as u64))
        })
        .collect()
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    use raftfs_fleet::{Config, Fault, Fleet, GroupKind, Topology};
    use std::time::Duration;
    const MIB: u64 = 1 << 20;
    let rs = ((a.groups as f64 * a.rs_share.clamp(0.0, 1.0)).round() as u64).min(a.groups);
    let length = (a.min_mib * MIB, a.max_mib.max(a.min_mib) * MIB);
    let topology = Topology::even(a.datacenters, a.racks, a.servers, 100 << 40);
    let mut cfg = Config::new(
        a.seed,
        topology.clone(),
        vec![
            GroupKind {
                policy: "RS-6-3-1024k".parse()?,
                count: rs,
                length,
            },
            GroupKind {
                policy: "REPLICATED-3".parse()?,
                count: a.groups - rs,
                length,
            },
        ],
    );
    cfg.scheduler.rack_aware = !a.rack_blind;
    #[cfg(feature = "bug-switches")]
    for bug in &a.bug {
        match bug.as_str() {
            "unweighted-xmits" => cfg.bugs.unweighted_xmits = true,
            "ignore-budgets" => cfg.bugs.ignore_budgets = true,
            other => anyhow::bail!("unknown bug {other}: unweighted-xmits or ignore-budgets"),
        }
    }
    let setup = std::time::Instant::now();
    let mut fleet = Fleet::new(cfg)?;
    let setup_s = setup.elapsed().as_secs_f64();
    let change = raftfs_core::namespace::throttle::ThrottleChange {
        rack_pairs: pairs(&a.rack_pair)?,
        datacenter_pairs: pairs(&a.dc_pair)?,
        ..Default::default()
    };
    if !change.rack_pairs.is_empty() || !change.datacenter_pairs.is_empty() {
        fleet.at(Duration::ZERO, Fault::Throttle(change));
    }
    if let Some(at) = a.change_at {
        let change = raftfs_core::namespace::throttle::ThrottleChange {
            rack_pairs: pairs(&a.change_rack_pair)?,
            datacenter_pairs: pairs(&a.change_dc_pair)?,
            ..Default::default()
        };
        fleet.at(Duration::from_secs(at), Fault::Throttle(change));
    }
    if let Some(rack) = &a.decommission_rack {
        let r = topology
            .rack_named(rack)
            .ok_or_else(|| anyhow::anyhow!("no rack {rack}"))?;
        fleet.at(
            Duration::from_secs(a.at),
            Fault::Decommission(topology.servers_of(r).collect()),
        );
    }
    if let Some(link) = &a.link_down {
        let dc = |name: &str| {
            topology
                .datacenters
                .iter()
                .position(|d| d == name)
                .ok_or_else(|| anyhow::anyhow!("no datacenter {name}"))
        };
        let (x, y) = link
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("{link}: DC1:DC2"))?;
        let (x, y) = (dc(x)?, dc(y)?);
        fleet.at(Duration::from_secs(a.link_down_at), Fault::LinkDown(x, y));
        fleet.at(
            Duration::from_secs(a.link_down_at + a.link_down_for),
            Fault::LinkUp(x, y),
        );
    }
    let mut victims = Vec::new();
    if let Some(rack) = &a.kill_rack {
        let r = topology
            .rack_named(rack)
            .ok_or_else(|| anyhow::anyhow!("no rack {rack}"))?;
        victims.extend(topology.servers_of(r));
    }
    for r in 0..a.kill_servers.min(topology.racks.len()) {
        victims.extend(topology.servers_of(r).next());
    }
    if !victims.is_empty() {
        fleet.at(Duration::from_secs(a.at), Fault::Kill(victims));
    }
    let wall = std::time::Instant::now();
    let mut o = fleet.run(Duration::from_secs(a.seconds))?;
    let run_s = wall.elapsed().as_secs_f64();
    if a.summary {
        for s in o
            .record
            .budgeted
            .values_mut()
            .chain(o.record.datacenter_pairs.values_mut())
        {
            s.per_second.clear();
        }
    }
    let out = serde_json::json!({
        "servers": a.servers, "racks": a.racks, "datacenters": a.datacenters,
        "groups": a.groups, "setup_wall_s": setup_s, "run_wall_s": run_s,
        "outcome": o,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Calibrate { seed, seeds } => {
            let c = raftfs_fleet::calibration::calibrate(seed, seeds)?;
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        Command::Run(a) => run(*a)?,
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
