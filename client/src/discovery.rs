//! Finding the metaservers: `--meta ADDR[,ADDR...]`, the `RAFTFS_META` environment variable,
//! or `--cluster DIR` (the `cluster.json` that `metactl local up` writes, DESIGN §8).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// One metaserver process of a local cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetaEntry {
    pub id: u64,
    pub addr: String,
    pub pid: u32,
    /// "voter" or "observer"
    pub role: String,
    pub data_dir: String,
    /// Prometheus `/metrics` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
}

/// One blockserver process of a local cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockEntry {
    pub id: u64,
    pub addr: String,
    pub pid: u32,
    pub rack: String,
    pub data_dir: String,
    /// Prometheus `/metrics` and the operator page (`/ui`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
}

/// The TLS files a tool uses against a local TLS cluster (the superuser's certificate).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TlsEntry {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// `DIR/cluster.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterFile {
    pub meta: Vec<MetaEntry>,
    #[serde(default)]
    pub block: Vec<BlockEntry>,
    /// Set when every server of the cluster is reached over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsEntry>,
    /// A federated cluster (DESIGN §10): its nameservices, each a cluster directory of its
    /// own (its members' `cluster.json`), sharing the blockservers listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservices: Vec<NameserviceEntry>,
    /// A federated cluster's routers: what its tools and clients call (one tree over every
    /// nameservice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routers: Vec<RouterEntry>,
}

/// One router of a federated local cluster (DESIGN §10).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouterEntry {
    pub id: u64,
    pub addr: String,
    pub pid: u32,
    /// Prometheus `/metrics` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
}

/// One nameservice of a federated local cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NameserviceEntry {
    pub name: String,
    /// Its cluster directory.
    pub dir: String,
}

impl ClusterFile {
    /// The file's path inside a cluster directory.
    pub fn path(dir: &Path) -> std::path::PathBuf {
        dir.join("cluster.json")
    }

    /// Reads `DIR/cluster.json`.
    pub fn read(dir: &Path) -> Result<Self, ClientError> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ClientError::Config(format!("reading {}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| ClientError::Config(format!("parsing {}: {e}", path.display())))
    }

    /// The client TLS settings the cluster's tools use (its superuser's certificate), if
    /// the cluster is a TLS one.
    pub fn client_tls(&self) -> Result<Option<crate::ClientTls>, ClientError> {
        self.tls
            .as_ref()
            .map(|t| {
                crate::ClientTls::from_files(
                    Path::new(&t.ca),
                    Some(Path::new(&t.cert)),
                    Some(Path::new(&t.key)),
                )
            })
            .transpose()
    }

    /// Where clients call: metaserver addresses, voters first; a federated cluster's routers.
    pub fn meta_addrs(&self) -> Vec<String> {
        if self.meta.is_empty() {
            // A federated cluster: its routers speak the client protocol for every nameservice.
            return self.routers.iter().map(|r| r.addr.clone()).collect();
        }
        let mut metas: Vec<&MetaEntry> = self.meta.iter().collect();
        metas.sort_by_key(|m| (m.role != "voter", m.id));
        metas.into_iter().map(|m| m.addr.clone()).collect()
    }
}

/// Splits `a,b,c` into addresses.
pub fn parse_addrs(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The metaserver addresses from, in order of precedence: explicit addresses, a cluster
/// directory, the `RAFTFS_META` environment variable.
pub fn resolve(meta: Option<&str>, cluster: Option<&Path>) -> Result<Vec<String>, ClientError> {
    if let Some(m) = meta {
        let addrs = parse_addrs(m);
        if !addrs.is_empty() {
            return Ok(addrs);
        }
    }
    if let Some(dir) = cluster {
        let file = ClusterFile::read(dir)?;
        if file.meta.is_empty() && file.routers.is_empty() && !file.nameservices.is_empty() {
            let dirs: Vec<&str> = file.nameservices.iter().map(|n| n.dir.as_str()).collect();
            return Err(ClientError::Config(format!(
                "{} is a federated cluster without routers: name one nameservice's directory ({})",
                dir.display(),
                dirs.join(", ")
            )));
        }
        return Ok(file.meta_addrs());
    }
    if let Ok(m) = std::env::var("RAFTFS_META") {
        let addrs = parse_addrs(&m);
        if !addrs.is_empty() {
            return Ok(addrs);
        }
    }
    Err(ClientError::Config(
        "no metaserver given: use --meta, --cluster or RAFTFS_META".into(),
    ))
}
