//! `metactl upgrade prepare | status | finalize | rollback` (DESIGN §11), after HDFS's
//! `dfsadmin -rollingUpgrade prepare|query|finalize` and its rollback.
//!
//! 1. `prepare` marks an upgrade in progress.
//! 2. Every member is restarted onto the new binary, one at a time (`local rolling-restart`,
//!    or the operator's own tooling); the new binary keeps writing the cluster's format level,
//!    so any member may still go back to the old one.
//! 3. `status` shows each member's binary and the newest level it writes.
//! 4. `finalize` raises the cluster's level to the newest that every member writes: from then
//!    on the new formats are written and the old binary can no longer follow. It refuses while
//!    any member does not answer: a member not heard from may still run the old binary.
//!    Or `rollback` cancels the upgrade, and the members go back to the old binary.

use anyhow::{Context, Result, bail};
use raftfs_client::{Client, NodeStatus};
use raftfs_core::level::Level;
use raftfs_core::namespace::upgrade::UpgradeStep;
use serde_json::json;

/// Every member's status (in membership order), or why it did not answer.
async fn members(
    client: &Client,
) -> Result<Vec<(u64, String, String, Result<NodeStatus, String>)>> {
    let mut out = Vec::new();
    for m in client.members().await.context("members")? {
        let status = client.node_status(&m.addr).await.map_err(|e| e.to_string());
        out.push((m.id.get(), m.addr.clone(), m.role.to_string(), status));
    }
    Ok(out)
}

/// `upgrade prepare`.
pub async fn prepare(client: &Client) -> Result<()> {
    client.upgrade(UpgradeStep::Prepare).await?;
    println!(
        "upgrade prepared: restart every member onto the new binary, then finalize (or roll back)"
    );
    Ok(())
}

/// `upgrade rollback`.
pub async fn rollback(client: &Client) -> Result<()> {
    client.upgrade(UpgradeStep::Rollback).await?;
    println!("upgrade rolled back: the members may go back to the old binary");
    Ok(())
}

/// `upgrade finalize`: to the newest level every member writes.
pub async fn finalize(client: &Client) -> Result<()> {
    let members = members(client).await?;
    let mut to: Option<u32> = None;
    for (id, addr, _, status) in &members {
        match status {
            Ok(s) => to = Some(to.map_or(s.newest_level, |t| t.min(s.newest_level))),
            Err(e) => bail!(
                "member {id} ({addr}) did not answer ({e}): every member must report its binary before finalize"
            ),
        }
    }
    let Some(to) = to else {
        bail!("no member answered");
    };
    let to = u16::try_from(to).map_err(|_| anyhow::anyhow!("format level {to}"))?;
    client
        .upgrade(UpgradeStep::Finalize { to: Level(to) })
        .await?;
    println!("upgrade finalized: the cluster writes format level {to}");
    Ok(())
}

/// `upgrade status [--json]`.
pub async fn status(client: &Client, as_json: bool) -> Result<()> {
    let members = members(client).await?;
    let reported: Vec<&NodeStatus> = members.iter().filter_map(|m| m.3.as_ref().ok()).collect();
    // The cluster's state as the most advanced member has applied it.
    let newest_state = reported.iter().max_by_key(|s| s.applied_index);
    let level = newest_state.map(|s| s.level);
    let prepared = newest_state.and_then(|s| s.upgrade_prepared_ms);
    let finalize_to = reported.iter().map(|s| s.newest_level).min();
    let all_answered = reported.len() == members.len();
    if as_json {
        let doc = json!({
            "level": level,
            "prepared_ms": prepared,
            "finalize_to": finalize_to.filter(|_| all_answered),
            "members": members.iter().map(|(id, addr, role, s)| match s {
                Ok(s) => json!({"id": id, "addr": addr, "role": role, "binary": s.binary_version,
                    "newest_level": s.newest_level, "level": s.level, "applied_index": s.applied_index}),
                Err(e) => json!({"id": id, "addr": addr, "role": role, "error": e}),
            }).collect::<Vec<_>>(),
        });
        println!("{doc}");
        return Ok(());
    }
    match level {
        Some(l) => println!("cluster format level: {l}"),
        None => println!("cluster format level: unknown (no member answered)"),
    }
    match prepared {
        Some(ms) => println!("upgrade: prepared at {ms} ms since the epoch"),
        None => println!("upgrade: none prepared"),
    }
    match (all_answered, finalize_to) {
        (true, Some(to)) => {
            println!("finalize would write level {to} (the newest every member writes)")
        }
        _ => println!("finalize: not possible until every member answers"),
    }
    println!(
        "{:>4}  {:<22} {:<9} {:<24} {:>6} {:>6}",
        "id", "addr", "role", "binary", "newest", "level"
    );
    for (id, addr, role, s) in &members {
        match s {
            Ok(s) => println!(
                "{:>4}  {:<22} {:<9} {:<24} {:>6} {:>6}",
                id, addr, role, s.binary_version, s.newest_level, s.level
            ),
            Err(e) => println!("{id:>4}  {addr:<22} {role:<9} not answering: {e}"),
        }
    }
    Ok(())
}
