//! `metactl blockserver list | decommission | recommission | maintenance`: the blockservers
//! as a nameservice's active knows them, with that nameservice's pool's share of each
//! (DESIGN §10), and taking them out of service on purpose (DESIGN §11).
//!
//! Blockservers are shared by a federation's nameservices, each with its own pool on them
//! and its own active judging them: a server leaves only when every nameservice has drained
//! it, so the admin commands go to each nameservice of the federation (`--federation`, or a
//! local federation's) and `decommission --wait` waits for all of them.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use raftfs_client::{AdminLabel, Client};
use raftfs_core::id::BlockServerId;
use raftfs_core::namespace::admin_state::AdminChange;
use serde_json::json;

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// `blockserver list [--json]`.
pub async fn list(client: &Client, as_json: bool) -> Result<()> {
    let (nameservice, servers) = client.block_servers().await?;
    if as_json {
        println!(
            "{}",
            json!({"nameservice": nameservice, "blockservers": servers})
        );
        return Ok(());
    }
    let pool = if nameservice.is_empty() {
        "pool"
    } else {
        nameservice.as_str()
    };
    println!(
        "{:>4}  {:<22} {:<8} {:<5} {:<16} {:>10} {:>10} {:>10} {:>8} {:>5}",
        "id",
        "addr",
        "rack",
        "live",
        "state",
        "used GiB",
        format!("{pool} GiB"),
        "cap GiB",
        "blocks",
        "xmits"
    );
    for s in &servers {
        println!(
            "{:>4}  {:<22} {:<8} {:<5} {:<16} {:>10.2} {:>10.2} {:>10.1} {:>8} {:>5}",
            s.id.get(),
            s.addr,
            s.rack,
            s.live,
            state_text(&s.admin),
            gib(s.used),
            gib(s.pool_used),
            gib(s.capacity),
            s.blocks,
            s.xmits_in_progress
        );
    }
    Ok(())
}

/// The state column: a drain's remaining blocks, a maintenance's end.
pub fn state_text(a: &raftfs_client::AdminStatus) -> String {
    match (a.state, a.drain_remaining, a.until_ms) {
        (AdminLabel::Decommissioning, Some(n), _) => format!("draining ({n} left)"),
        (AdminLabel::InMaintenance, _, Some(until)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let left = (until / 1000).saturating_sub(now);
            format!("maintenance {}m{}s", left / 60, left % 60)
        }
        (state, _, _) => state.to_string(),
    }
}

/// `decommission` / `recommission` / `maintenance`: `change` for each of `ids`, in every
/// nameservice of `clients`.
pub async fn set_state(
    clients: &[(String, Client)],
    ids: &[u64],
    change: AdminChange,
) -> Result<()> {
    for (ns, client) in clients {
        for id in ids {
            client
                .set_admin_state(BlockServerId(*id), change)
                .await
                .map_err(|e| anyhow::anyhow!("blockserver {id} in {}: {e}", shown(ns)))?;
        }
    }
    Ok(())
}

fn shown(ns: &str) -> &str {
    if ns.is_empty() { "the nameservice" } else { ns }
}

/// `decommission --wait`: polls every nameservice until each of `ids` is decommissioned in
/// all of them, printing progress; fails after `timeout`.
pub async fn wait_decommissioned(
    clients: &[(String, Client)],
    ids: &[u64],
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let mut left = Vec::new();
        for (ns, client) in clients {
            let (_, servers) = client.block_servers().await?;
            for id in ids {
                let Some(s) = servers.iter().find(|s| s.id.get() == *id) else {
                    bail!("blockserver {id} is not registered with {}", shown(ns));
                };
                if s.admin.state != AdminLabel::Decommissioned {
                    left.push(format!("{id}@{}: {}", shown(ns), state_text(&s.admin)));
                }
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        let now = left.join(", ");
        if now != last {
            eprintln!("waiting: {now}");
            last = now;
        }
        if Instant::now() >= deadline {
            bail!("not decommissioned after {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
