//! The fleet's checks on the scenarios of issue 23, at a size a test can afford (the
//! 10,000-server runs are `bench/fleet.sh`'s): a rack lost under datacenter budgets, the same
//! with each planted bug (so that the checks are seen to fail), a rack decommissioned, and
//! the datacenter link lost while a rack is rebuilt.
//!
//! - No budget exceeded by more than 5% in any simulated second, no server carrying more
//!   xmits than `max-streams`, no reply past its room, the closest-to-loss groups first.
//! - `unweighted-xmits` (a task takes 1 xmit, not its weight, and gives its weight back):
//!   the count goes negative (the servers report 0 and are handed work on every
//!   heartbeat, refused past their task limit). `ignore-budgets`: the datacenter budget is
//!   exceeded.

use std::time::Duration;

use raftfs_core::namespace::throttle::ThrottleChange;
use raftfs_fleet::{Bugs, Config, Fault, Fleet, GroupKind, Outcome, Topology};

/// 60 servers in 6 racks over 2 datacenters, 600 groups (half RS-6-3, half 3 replicas,
/// 4–12 MiB), both datacenter links budgeted at 40 MB/s.
fn budgeted_fleet(bugs: Bugs) -> (Fleet, Topology) {
    const MIB: u64 = 1 << 20;
    let topology = Topology::even(2, 6, 60, 1 << 40);
    let mut cfg = Config::new(
        3,
        topology.clone(),
        vec![
            GroupKind {
                policy: "RS-6-3-1024k".parse().expect("policy"),
                count: 300,
                length: (4 * MIB, 12 * MIB),
            },
            GroupKind {
                policy: "REPLICATED-3".parse().expect("policy"),
                count: 300,
                length: (4 * MIB, 12 * MIB),
            },
        ],
    );
    cfg.bugs = bugs;
    let mut fleet = Fleet::new(cfg).expect("fleet");
    fleet.at(
        Duration::ZERO,
        Fault::Throttle(ThrottleChange {
            datacenter_pairs: vec![
                ("dc1".into(), "dc2".into(), 40_000_000),
                ("dc2".into(), "dc1".into(), 40_000_000),
            ],
            ..ThrottleChange::default()
        }),
    );
    (fleet, topology)
}

fn rack_lost(bugs: Bugs) -> Outcome {
    let (mut fleet, topology) = budgeted_fleet(bugs);
    fleet.at(
        Duration::from_secs(5),
        Fault::Kill(topology.servers_of(1).collect()),
    );
    fleet.run(Duration::from_secs(3_000)).expect("run")
}

#[test]
fn a_lost_rack_is_rebuilt_within_the_budgets_and_the_limits() {
    let o = rack_lost(Bugs::default());
    assert!(o.seconds_to_healthy.is_some(), "{:?}", o.checks);
    assert_eq!(o.still_degraded, 0);
    assert!(o.checks.pass, "{:?}", o.checks);
    assert!(
        o.record.datacenter_pairs.values().any(|s| s.total() > 0.0),
        "the rebuild crossed between the datacenters (the budget was exercised)"
    );
}

#[test]
fn the_planted_bugs_make_the_checks_fail() {
    let xmits = rack_lost(Bugs {
        unweighted_xmits: true,
        ..Bugs::default()
    });
    assert!(xmits.checks.min_xmits < 0, "{:?}", xmits.checks);
    assert!(!xmits.checks.pass);
    let budgets = rack_lost(Bugs {
        ignore_budgets: true,
        ..Bugs::default()
    });
    assert!(
        budgets.checks.seconds_over_budget.values().any(|n| *n > 0),
        "{:?}",
        budgets.checks
    );
    assert!(!budgets.checks.pass);
}

#[test]
fn a_decommissioned_rack_drains_and_a_lost_link_only_delays_the_rebuild() {
    let (mut fleet, topology) = budgeted_fleet(Bugs::default());
    fleet.at(
        Duration::from_secs(5),
        Fault::Decommission(topology.servers_of(2).collect()),
    );
    let o = fleet.run(Duration::from_secs(3_000)).expect("run");
    assert!(o.seconds_to_decommissioned.is_some(), "{:?}", o.checks);
    assert!(o.checks.pass, "{:?}", o.checks);
    assert!(o.record.blocks_rebuilt > 0);

    // The link between the datacenters is down for 10 minutes from the loss: rebuilds that
    // must read across it fail and are retried; the fleet is whole after it returns.
    let (mut fleet, topology) = budgeted_fleet(Bugs::default());
    fleet.at(
        Duration::from_secs(5),
        Fault::Kill(topology.servers_of(1).collect()),
    );
    fleet.at(Duration::from_secs(5), Fault::LinkDown(0, 1));
    fleet.at(Duration::from_secs(605), Fault::LinkUp(0, 1));
    let o = fleet.run(Duration::from_secs(4_000)).expect("run");
    let healthy = o.seconds_to_healthy.expect("whole again");
    assert!(healthy > 600.0, "rebuilt across a lost link in {healthy} s");
    assert!(
        o.record.tasks_failed > 0,
        "reads across the lost link failed"
    );
    assert!(o.checks.pass, "{:?}", o.checks);
}
