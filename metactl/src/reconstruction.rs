//! `metactl reconstruction status | throttle`: the active's rebuilding of lost internal
//! blocks, and its byte-rate budgets (DESIGN §7).

use anyhow::{Result, bail};
use raftfs_client::Client;
use raftfs_core::namespace::throttle::ThrottleChange;
use serde_json::json;

/// MB/s (10^6 bytes) -> bytes/s.
fn bytes_per_sec(mbps: f64) -> Result<u64> {
    if !mbps.is_finite() || mbps < 0.0 {
        bail!("a rate must be a non-negative number of MB/s, got {mbps}");
    }
    Ok((mbps * 1e6).round() as u64)
}

/// `A:B=MBPS` -> (A, B, bytes/s).
pub fn parse_pair(s: &str) -> Result<(String, String, u64)> {
    let Some((pair, rate)) = s.split_once('=') else {
        bail!("expected FROM:TO=MBPS, got {s:?}");
    };
    let Some((from, to)) = pair.split_once(':') else {
        bail!("expected FROM:TO=MBPS, got {s:?}");
    };
    let mbps: f64 = rate
        .parse()
        .map_err(|_| anyhow::anyhow!("bad rate in {s:?}"))?;
    Ok((from.to_owned(), to.to_owned(), bytes_per_sec(mbps)?))
}

/// `dc1/r1` -> (rack, datacenter).
pub fn parse_rack(s: &str) -> Result<(String, String)> {
    match s.split_once('/') {
        Some((dc, rack)) if !dc.is_empty() && !rack.is_empty() => {
            Ok((rack.to_owned(), dc.to_owned()))
        }
        _ => bail!("expected DATACENTER/RACK, got {s:?}"),
    }
}

/// `reconstruction throttle`.
pub async fn throttle(
    client: &Client,
    node_mbps: Option<f64>,
    rack_pairs: &[String],
    racks: &[String],
    dc_pairs: &[String],
) -> Result<()> {
    let change = ThrottleChange {
        node_bytes_per_sec: node_mbps.map(bytes_per_sec).transpose()?,
        rack_pairs: rack_pairs
            .iter()
            .map(|s| parse_pair(s))
            .collect::<Result<_>>()?,
        racks: racks.iter().map(|s| parse_rack(s)).collect::<Result<_>>()?,
        datacenter_pairs: dc_pairs
            .iter()
            .map(|s| parse_pair(s))
            .collect::<Result<_>>()?,
    };
    client.set_throttle(&change).await?;
    Ok(())
}

fn mbps(bps: u64) -> f64 {
    bps as f64 / 1e6
}

/// `reconstruction status [--json]`.
pub async fn status(client: &Client, as_json: bool) -> Result<()> {
    let r = client.reconstruction_status().await?;
    let t = &r.throttle;
    if as_json {
        let pair = |((from, to), bps): (&(String, String), &u64)| json!({"from": from, "to": to, "mb_per_sec": mbps(*bps)});
        let doc = json!({
            "active": r.active,
            "queued": r.queued,
            "unrecoverable": r.unrecoverable,
            "in_flight": r.in_flight,
            "tasks_started": r.tasks_started,
            "tasks_finished": r.tasks_finished,
            "tasks_failed": r.tasks_failed,
            "throttle": {
                "node_mb_per_sec": mbps(t.node_bytes_per_sec),
                "rack_pairs": t.rack_pairs.iter().map(pair).collect::<Vec<_>>(),
                "racks": t.racks.iter().map(|(rack, dc)| json!({"rack": rack, "datacenter": dc})).collect::<Vec<_>>(),
                "datacenter_pairs": t.datacenter_pairs.iter().map(pair).collect::<Vec<_>>(),
            },
            "nodes": r.nodes.iter().map(|n| json!({"id": n.node, "rack": n.rack, "live": n.live, "xmits_in_progress": n.xmits_in_progress, "tasks_in_flight": n.tasks_in_flight, "admin": n.admin})).collect::<Vec<_>>(),
        });
        println!("{doc}");
        return Ok(());
    }
    println!("active: {}", r.active);
    println!(
        "queued groups by priority (0 = one loss from data loss): {:?}",
        r.queued
    );
    println!("unrecoverable groups: {}", r.unrecoverable);
    println!(
        "tasks: {} in flight, {} started, {} finished, {} failed",
        r.in_flight, r.tasks_started, r.tasks_finished, r.tasks_failed
    );
    match t.node_bytes_per_sec {
        0 => println!("per-blockserver budget: none"),
        b => println!("per-blockserver budget: {:.1} MB/s", mbps(b)),
    }
    for ((from, to), bps) in &t.rack_pairs {
        println!("rack pair {from} -> {to}: {:.1} MB/s", mbps(*bps));
    }
    for (rack, dc) in &t.racks {
        println!("rack {rack} in datacenter {dc}");
    }
    for ((from, to), bps) in &t.datacenter_pairs {
        println!("datacenter pair {from} -> {to}: {:.1} MB/s", mbps(*bps));
    }
    println!(
        "{:>6} {:<10} {:>5} {:>6} {:>9}  state",
        "node", "rack", "live", "xmits", "in flight"
    );
    for n in &r.nodes {
        println!(
            "{:>6} {:<10} {:>5} {:>6} {:>9}  {}",
            n.node,
            n.rack,
            n.live,
            n.xmits_in_progress,
            n.tasks_in_flight,
            crate::blockserver::state_text(&n.admin)
        );
    }
    Ok(())
}
