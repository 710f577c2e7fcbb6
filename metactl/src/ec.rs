//! `metactl ec ...` and `metactl fsck`: storage policies, the health of block groups, and
//! what erasure coding costs small files.

use std::collections::BTreeMap;

use anyhow::Result;
use raftfs_client::Client;
use raftfs_core::StoragePolicy;
use raftfs_core::policy::{EC_POLICIES, MAX_REPLICATION};
use serde::Serialize;

/// Every policy a file or directory can have (`ec list-policies`).
pub fn list_policies() {
    println!("REPLICATED-3 (default; any REPLICATED-N, N in 1..={MAX_REPLICATION})");
    for p in EC_POLICIES {
        println!("{p}");
    }
}

/// The summary `fsck --json` prints (DESIGN §8).
#[derive(Debug, Serialize)]
struct FsckSummary {
    files: u64,
    groups: u64,
    healthy: u64,
    degraded: u64,
    missing: u64,
    live_blockservers: u64,
    unhealthy: Vec<FsckFile>,
}

#[derive(Debug, Serialize)]
struct FsckFile {
    path: String,
    policy: String,
    groups: u64,
    degraded: u64,
    missing: u64,
}

/// `fsck [PATH] [--json]`: returns whether every group is readable (none missing).
pub async fn fsck(client: &Client, path: &str, json: bool) -> Result<bool> {
    let r = client.fsck(path, false).await?;
    if json {
        let summary = FsckSummary {
            files: r.files,
            groups: r.groups,
            healthy: r.healthy,
            degraded: r.degraded,
            missing: r.missing,
            live_blockservers: r.live_blockservers,
            unhealthy: r
                .unhealthy
                .iter()
                .map(|f| FsckFile {
                    path: f.path.clone(),
                    policy: f.policy.to_string(),
                    groups: f.groups,
                    degraded: f.degraded,
                    missing: f.missing,
                })
                .collect(),
        };
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        for f in &r.unhealthy {
            println!(
                "{}: {} of {} block groups degraded, {} missing ({})",
                f.path, f.degraded, f.groups, f.missing, f.policy
            );
        }
        println!(
            "Status: {}",
            if r.missing > 0 { "CORRUPT" } else { "HEALTHY" }
        );
        println!(" Total files:\t\t{}", r.files);
        println!(" Total block groups:\t{}", r.groups);
        println!("  Healthy:\t\t{}", r.healthy);
        println!(
            "  Degraded:\t\t{} (readable; redundancy to rebuild)",
            r.degraded
        );
        println!("  Missing:\t\t{} (fewer than k internal blocks)", r.missing);
        println!(" Live blockservers:\t{}", r.live_blockservers);
        println!(
            "The filesystem under path '{path}' is {}",
            if r.missing > 0 { "CORRUPT" } else { "HEALTHY" }
        );
    }
    Ok(r.missing == 0)
}

/// One row of `ec report`.
#[derive(Debug, Default, Serialize)]
struct PolicyRow {
    files: u64,
    data_bytes: u64,
    internal_blocks: u64,
    stored_bytes: u64,
    /// Files smaller than one full stripe (k cells): they pay m parity blocks for little data.
    small_files: u64,
    small_internal_blocks: u64,
}

/// `ec report [PATH] [--json]`: per policy, what the files store and what erasure coding
/// costs the small ones (internal blocks per file beside what 3 replicas would take).
pub async fn report(client: &Client, path: &str, json: bool) -> Result<()> {
    let r = client.fsck(path, true).await?;
    let mut rows: BTreeMap<String, PolicyRow> = BTreeMap::new();
    for f in &r.all {
        let row = rows.entry(f.policy.to_string()).or_default();
        row.files += 1;
        row.data_bytes += f.length;
        row.internal_blocks += f.internal_blocks;
        row.stored_bytes += f.stored_bytes;
        let stripe = stripe_bytes(&f.policy);
        if stripe.is_some_and(|s| f.length < s) {
            row.small_files += 1;
            row.small_internal_blocks += f.internal_blocks;
        }
    }
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    println!(
        "{:<16} {:>8} {:>14} {:>10} {:>14} {:>9} {:>12} {:>16}",
        "policy",
        "files",
        "data bytes",
        "blocks",
        "stored bytes",
        "overhead",
        "small files",
        "blocks/small"
    );
    for (policy, row) in &rows {
        let overhead = if row.data_bytes == 0 {
            "-".to_owned()
        } else {
            format!("{:.2}x", row.stored_bytes as f64 / row.data_bytes as f64)
        };
        let per_small = if row.small_files == 0 {
            "-".to_owned()
        } else {
            format!(
                "{:.1} (3 as REPL-3)",
                row.small_internal_blocks as f64 / row.small_files as f64
            )
        };
        println!(
            "{:<16} {:>8} {:>14} {:>10} {:>14} {:>9} {:>12} {:>16}",
            policy,
            row.files,
            row.data_bytes,
            row.internal_blocks,
            row.stored_bytes,
            overhead,
            row.small_files,
            per_small
        );
    }
    Ok(())
}

/// Data bytes of one full stripe of an EC policy (`RS-6-3-1024k`: 6 MiB).
fn stripe_bytes(policy: &StoragePolicy) -> Option<u64> {
    Some(policy.layout()?.stripe_data())
}
