//! `metactl mount add|remove|list|default`: the federation's mount table (DESIGN §10), kept
//! by the nameservice `--cluster` names (an operator designates one; `local up
//! --nameservices N` uses ns1).

use anyhow::{Context, Result, bail};
use raftfs_client::Client;
use raftfs_core::federation::{Destination, NameserviceId};
use raftfs_core::namespace::NsPath;
use serde_json::json;

/// `NS:PATH` -> the destination, checked before anything is sent.
pub fn parse_destination(s: &str) -> Result<Destination> {
    let Some((ns, path)) = s.split_once(':') else {
        bail!("expected NAMESERVICE:PATH (ns1:/user), got {s:?}");
    };
    Ok(Destination {
        nameservice: NameserviceId::parse(ns)?,
        path: NsPath::parse(path).with_context(|| format!("destination {s:?}"))?,
    })
}

/// `mount add AT NS:PATH`.
pub async fn add(client: &Client, at: &str, to: &str) -> Result<()> {
    let to = parse_destination(to)?;
    client
        .mount_add(at, to.nameservice.as_str(), &to.path.to_string())
        .await?;
    Ok(())
}

/// `mount default NS` / `mount default --none`.
pub async fn default(client: &Client, nameservice: Option<&str>) -> Result<()> {
    if let Some(n) = nameservice {
        NameserviceId::parse(n)?;
    }
    client.set_default_nameservice(nameservice).await?;
    Ok(())
}

/// `mount list [--json]`.
pub async fn list(client: &Client, as_json: bool) -> Result<()> {
    let table = client.mount_table().await?;
    if as_json {
        let entries: Vec<_> = table
            .entries()
            .map(|(at, to)| {
                json!({"at": at.to_string(), "nameservice": to.nameservice.as_str(),
                       "path": to.path.to_string()})
            })
            .collect();
        let default = table.default_nameservice().map(NameserviceId::as_str);
        println!(
            "{}",
            json!({"mounts": entries, "default_nameservice": default})
        );
        return Ok(());
    }
    for (at, to) in table.entries() {
        println!("{at} -> {to}");
    }
    if let Some(d) = table.default_nameservice() {
        println!("(elsewhere) -> {d}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_a_nameservice_and_a_path() {
        let d = parse_destination("ns1:/user").expect("valid");
        assert_eq!(
            (d.nameservice.as_str(), d.path.to_string()),
            ("ns1", "/user".into())
        );
        for bad in ["ns1", "ns1:user", "NS:/x", ":/x", "ns1:/a//b"] {
            assert!(parse_destination(bad).is_err(), "{bad:?} accepted");
        }
    }
}
