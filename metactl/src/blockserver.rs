//! `metactl blockserver list`: the blockservers as a nameservice's active knows them, with
//! that nameservice's pool's share of each (DESIGN §10).

use anyhow::Result;
use raftfs_client::Client;
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
        "{:>4}  {:<22} {:<8} {:<5} {:>10} {:>10} {:>10} {:>8} {:>5}",
        "id",
        "addr",
        "rack",
        "live",
        "used GiB",
        format!("{pool} GiB"),
        "cap GiB",
        "blocks",
        "xmits"
    );
    for s in &servers {
        println!(
            "{:>4}  {:<22} {:<8} {:<5} {:>10.2} {:>10.2} {:>10.1} {:>8} {:>5}",
            s.id.get(),
            s.addr,
            s.rack,
            s.live,
            gib(s.used),
            gib(s.pool_used),
            gib(s.capacity),
            s.blocks,
            s.xmits_in_progress
        );
    }
    Ok(())
}
