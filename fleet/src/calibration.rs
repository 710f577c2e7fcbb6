//! The rebuild benchmark's cluster in simulation (`bench/rebuild.sh`): 12 blockservers in 3
//! racks of 4, 9 GiB of RS-6-3-1024k in 12 groups of 768 MiB, one server killed (the first
//! of its rack), dead after 3 s; rack-aware, rack-blind, and rack-aware with an 8 MB/s
//! budget from r1 to r2 and an r2 server killed. The simulator is calibrated when it
//! reproduces what the real system measured (README, "Rebuilding a lost blockserver").

use std::time::Duration;

use raftfs_core::namespace::throttle::ThrottleChange;
use serde::Serialize;

use crate::fleet::{Config, Fault, Fleet, GroupKind, Outcome};
use crate::topology::Topology;

/// The benchmark's group length.
pub const GROUP_BYTES: u64 = 768 << 20;

/// One of the benchmark's three runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Run {
    RackAware,
    Random,
    /// Rack-aware, r1 -> r2 at `BUDGET` bytes a second, an r2 server lost.
    Budget,
}

/// The budget of the third run (the benchmark's `BUDGET_MBPS=8`).
pub const BUDGET: u64 = 8_000_000;

/// The benchmark's cluster and workload, seeded.
pub fn config(seed: u64, run: Run) -> Config {
    let mut cfg = Config::new(
        seed,
        Topology::even(1, 3, 12, 1 << 40),
        vec![GroupKind {
            policy: "RS-6-3-1024k".parse().unwrap_or_default(),
            count: 12,
            length: (GROUP_BYTES, GROUP_BYTES),
        }],
    );
    cfg.dead_after = Duration::from_secs(3);
    cfg.scheduler.rack_aware = run != Run::Random;
    cfg
}

/// One run: the victim (the first server of r1, or of r2 for the budget run) is killed at
/// 5 s; the run ends when every block is rebuilt.
pub fn run(seed: u64, run: Run) -> anyhow::Result<Outcome> {
    let mut fleet = Fleet::new(config(seed, run))?;
    let victim = if run == Run::Budget { 4 } else { 0 };
    if run == Run::Budget {
        fleet.at(
            Duration::from_secs(1),
            Fault::Throttle(ThrottleChange {
                rack_pairs: vec![("r1".into(), "r2".into(), BUDGET)],
                ..ThrottleChange::default()
            }),
        );
    }
    fleet.at(Duration::from_secs(5), Fault::Kill(vec![victim]));
    fleet.run(Duration::from_secs(3_600))
}

/// What the three runs give, averaged over seeds, beside the real benchmark's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub seeds: u64,
    /// Cross-rack bytes per byte rebuilt (the real benchmark: 2.0 rack-aware, 4.0 random).
    pub aware_cross_per_byte: f64,
    pub random_cross_per_byte: f64,
    /// r1 -> r2 mean rate over the budget (the real benchmark: 1.011), and its busiest
    /// second over the budget.
    pub budget_adherence: f64,
    pub budget_peak_second: f64,
    /// Simulated seconds from the loss to full redundancy, per run (means).
    pub aware_to_healthy_s: f64,
    pub random_to_healthy_s: f64,
    pub budget_to_healthy_s: f64,
}

/// The three runs over `seeds` seeds from `first`.
pub fn calibrate(first: u64, seeds: u64) -> anyhow::Result<Calibration> {
    let mut sums = [0.0f64; 7];
    for seed in first..first + seeds {
        let aware = run(seed, Run::RackAware)?;
        let random = run(seed, Run::Random)?;
        let budget = run(seed, Run::Budget)?;
        let per_byte = |o: &Outcome| o.record.cross_rack_bytes() / o.record.bytes_rebuilt.max(1.0);
        let pair = budget
            .record
            .budgeted
            .get("rack r1>r2")
            .cloned()
            .unwrap_or_default();
        let healthy = |o: &Outcome| o.seconds_to_healthy.unwrap_or(f64::NAN);
        for (sum, v) in sums.iter_mut().zip([
            per_byte(&aware),
            per_byte(&random),
            pair.mean_rate() / BUDGET as f64,
            pair.peak() / BUDGET as f64,
            healthy(&aware),
            healthy(&random),
            healthy(&budget),
        ]) {
            *sum += v;
        }
    }
    let n = seeds.max(1) as f64;
    Ok(Calibration {
        seeds,
        aware_cross_per_byte: sums[0] / n,
        random_cross_per_byte: sums[1] / n,
        budget_adherence: sums[2] / n,
        budget_peak_second: sums[3] / n,
        aware_to_healthy_s: sums[4] / n,
        random_to_healthy_s: sums[5] / n,
        budget_to_healthy_s: sums[6] / n,
    })
}
