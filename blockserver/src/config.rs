//! Blockserver configuration: a TOML file (see `etc/blockserver.toml`) and/or flags. Flags
//! override the file, so that `metactl local up` and an operator's deployment run the same
//! binary through the same code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raftfs_core::federation::NameserviceId;
use raftfs_runtime::WireSecurity;

use crate::pools::Pool;
use serde::{Deserialize, Serialize};

/// Everything a blockserver needs to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// This blockserver's id: unique among the blockservers of the cluster, > 0. Metaservers
    /// know the node by it across restarts and address changes, so it must be stable.
    pub id: u64,
    /// Address the gRPC data service binds.
    pub listen: SocketAddr,
    /// Address clients and metaservers reach this server at; defaults to `listen` (which then
    /// must not be a wildcard address).
    pub advertise: Option<String>,
    /// The rack this server is in ("r1", "/dc1/rack7"): placement spreads the internal blocks
    /// of a group over racks, and reconstruction prefers sources in the target's own rack.
    pub rack: String,
    /// Data directories, one per disk ("volume"). A new block goes to the volume with the most
    /// available space; a volume whose I/O fails is taken out of use.
    pub data_dirs: Vec<PathBuf>,
    /// Every metaserver (voters and observers) of the unnamed nameservice (a cluster without
    /// federation): the blockserver registers, heartbeats and reports to each, so that any of
    /// them can become the active with block locations at hand.
    pub metaservers: Vec<String>,
    /// The nameservices of a federated cluster (DESIGN §10), each with every one of its
    /// members: one block pool each, in `DIR/pools/NAME/` of every data directory.
    pub nameservices: Vec<NameserviceConfig>,
    /// Heartbeat period, ms. Metaservers declare a node dead after several missed ones.
    pub heartbeat_ms: u64,
    /// Period of full block reports, seconds. One is also sent right after every (re)registration;
    /// incremental reports carry the changes in between.
    pub full_report_secs: u64,
    /// Most blocks in one BlockReport RPC: a larger full report goes in several parts of one
    /// report id (one huge RPC is a known NameNode pain).
    pub report_split_blocks: usize,
    /// Bytes kept free on every volume (HDFS's `dfs.datanode.du.reserved`): a write that would
    /// leave less fails with `NO_SPACE`, and the space is not advertised as available.
    pub reserved_bytes: u64,
    /// Where to serve Prometheus `/metrics`; none when absent.
    pub metrics_addr: Option<SocketAddr>,
    /// The block scanner's read rate, bytes per second over all volumes (HDFS's
    /// `dfs.block.scanner.volume.bytes.per.second`); 0 turns the scanner off.
    pub scan_bytes_per_sec: u64,
    /// From the start of one scan of every stored block to the start of the next, seconds
    /// (HDFS's `dfs.datanode.scan.period.hours`, three weeks).
    pub scan_period_secs: u64,
    /// A write stream that brings no message for this long is ended as if its writer had
    /// gone (what arrived is kept for lease recovery), seconds: a writer whose host lost
    /// power leaves no connection that says so (HDFS's `dfs.datanode.socket.write.timeout`
    /// is of this order).
    pub write_idle_secs: u64,
    /// The protection of `listen`, more ports, and TLS files (DESIGN §9). With TLS files,
    /// every connection to metaservers and peers is TLS, presenting this server's certificate,
    /// whose subject must name it (`blockserver-<id>`).
    pub security: WireSecurity,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            id: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 7080)),
            advertise: None,
            rack: "default".into(),
            data_dirs: vec![PathBuf::from("data/block")],
            metaservers: Vec::new(),
            nameservices: Vec::new(),
            heartbeat_ms: 1000,
            full_report_secs: 3600,
            report_split_blocks: 10_000,
            reserved_bytes: 0,
            metrics_addr: None,
            scan_bytes_per_sec: 1 << 20,
            scan_period_secs: 21 * 24 * 3600,
            write_idle_secs: 60,
            security: WireSecurity::default(),
        }
    }
}

/// One nameservice this blockserver keeps a pool for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NameserviceConfig {
    pub name: NameserviceId,
    /// Every member of it, voters and observers.
    pub metaservers: Vec<String>,
}

/// A block pool this server keeps, and the members of its nameservice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub pool: Pool,
    pub metaservers: Vec<String>,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source: Box::new(source),
        })
    }

    /// The address others reach this server at, given the address it is bound to (which
    /// differs from `listen` when that asks for port 0).
    pub fn advertised(&self, bound: SocketAddr) -> String {
        self.advertise.clone().unwrap_or_else(|| bound.to_string())
    }

    /// Checks what a running server relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: &str| Err(ConfigError::Invalid(s.to_owned()));
        if self.id == 0 {
            return bad("id must be > 0");
        }
        if self.advertise.is_none() && self.listen.ip().is_unspecified() {
            return bad("advertise must be set when listen is a wildcard address");
        }
        if self.advertise.as_deref().is_some_and(str::is_empty) {
            return bad("advertise must not be empty");
        }
        if self.rack.is_empty() || self.rack.len() > raftfs_core::reconstruction::MAX_RACK_NAME {
            return bad("rack must be 1 to 256 bytes");
        }
        if self.write_idle_secs == 0 {
            return bad("write-idle-secs must be > 0");
        }
        if self.data_dirs.is_empty() || self.data_dirs.iter().any(|d| d.as_os_str().is_empty()) {
            return bad("data-dirs must name at least one directory");
        }
        let mut dirs = self.data_dirs.clone();
        dirs.sort();
        dirs.dedup();
        if dirs.len() != self.data_dirs.len() {
            return bad("data-dirs must be distinct");
        }
        if self.metaservers.iter().any(String::is_empty) {
            return bad("metaservers must not contain an empty address");
        }
        let mut pools = std::collections::BTreeMap::new();
        for ns in &self.nameservices {
            if ns.metaservers.is_empty() || ns.metaservers.iter().any(String::is_empty) {
                return bad(&format!(
                    "nameservice {} must name its metaservers, none empty",
                    ns.name
                ));
            }
            if let Some(other) = pools.insert(ns.name.pool(), &ns.name) {
                return bad(&format!(
                    "nameservices {other} and {} are both listed, or share a pool number",
                    ns.name
                ));
            }
        }
        if self.heartbeat_ms == 0 {
            return bad("heartbeat-ms must be > 0");
        }
        if self.full_report_secs == 0 {
            return bad("full-report-secs must be > 0");
        }
        if self.report_split_blocks == 0 {
            return bad("report-split-blocks must be > 0");
        }
        if self.scan_period_secs == 0 {
            return bad("scan-period-secs must be > 0 (scan-bytes-per-sec = 0 turns scanning off)");
        }
        self.security
            .validate(self.listen)
            .map_err(|e| ConfigError::Invalid(format!("security: {e}")))?;
        Ok(())
    }

    /// The pools this server keeps: the unnamed nameservice's when `metaservers` names its
    /// members or no nameservice is listed, and one per listed nameservice.
    pub fn pools(&self) -> Vec<PoolConfig> {
        let unnamed =
            (!self.metaservers.is_empty() || self.nameservices.is_empty()).then(|| PoolConfig {
                pool: Pool::unnamed(),
                metaservers: self.metaservers.clone(),
            });
        unnamed
            .into_iter()
            .chain(self.nameservices.iter().map(|ns| PoolConfig {
                pool: Pool::named(ns.name.clone()),
                metaservers: ns.metaservers.clone(),
            }))
            .collect()
    }

    /// The heartbeat period.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// The period of full block reports.
    pub fn full_report_period(&self) -> Duration {
        Duration::from_secs(self.full_report_secs)
    }

    /// How fast and how often the block scanner reads.
    pub fn scan_policy(&self) -> crate::scanner::ScanPolicy {
        crate::scanner::ScanPolicy {
            bytes_per_sec: self.scan_bytes_per_sec,
            period: Duration::from_secs(self.scan_period_secs),
        }
    }
}

/// Flags of the `blockserver` binary (and of `metactl serve-block`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Blockserver id (> 0, stable across restarts).
    #[arg(long)]
    pub id: Option<u64>,
    /// gRPC listen address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Advertised address (defaults to --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Rack name.
    #[arg(long)]
    pub rack: Option<String>,
    /// Data directories, comma-separated or repeated (replace the file's list).
    #[arg(long = "data-dir", value_delimiter = ',')]
    pub data_dirs: Vec<PathBuf>,
    /// Metaserver addresses, comma-separated (replace the file's list).
    #[arg(long, value_delimiter = ',')]
    pub metaservers: Vec<String>,
    /// Heartbeat period, ms.
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Full block report period, seconds.
    #[arg(long)]
    pub full_report_secs: Option<u64>,
    /// Most blocks per BlockReport RPC.
    #[arg(long)]
    pub report_split_blocks: Option<usize>,
    /// Bytes kept free on every volume.
    #[arg(long)]
    pub reserved_bytes: Option<u64>,
    /// Prometheus /metrics address.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Block scanner read rate, bytes/s (0: no scanning).
    #[arg(long)]
    pub scan_bytes_per_sec: Option<u64>,
    /// Block scanner period, seconds.
    #[arg(long)]
    pub scan_period_secs: Option<u64>,
}

impl ServeArgs {
    /// The configuration: the file (or defaults), then the flags.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.id {
            c.id = v;
        }
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.advertise {
            c.advertise = Some(v);
        }
        if let Some(v) = self.rack {
            c.rack = v;
        }
        if !self.data_dirs.is_empty() {
            c.data_dirs = self.data_dirs;
        }
        if !self.metaservers.is_empty() {
            c.metaservers = self.metaservers;
        }
        if let Some(v) = self.heartbeat_ms {
            c.heartbeat_ms = v;
        }
        if let Some(v) = self.full_report_secs {
            c.full_report_secs = v;
        }
        if let Some(v) = self.report_split_blocks {
            c.report_split_blocks = v;
        }
        if let Some(v) = self.reserved_bytes {
            c.reserved_bytes = v;
        }
        if let Some(v) = self.metrics_addr {
            c.metrics_addr = Some(v);
        }
        if let Some(v) = self.scan_bytes_per_sec {
            c.scan_bytes_per_sec = v;
        }
        if let Some(v) = self.scan_period_secs {
            c.scan_period_secs = v;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The package's directory as `cargo test` gives it to the running test: the one baked
    /// in at compile time may be another checkout's that shared the target directory (CI
    /// clones and builds with the developers' cache, and cargo does not rebuild for a move).
    fn manifest_dir() -> String {
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    }

    #[test]
    fn example_config_parses_and_validates() {
        let path = std::path::PathBuf::from(manifest_dir()).join("../etc/blockserver.toml");
        let c = Config::from_file(&path).expect("example parses");
        c.validate().expect("example is valid");
        assert_eq!(
            c.data_dirs,
            [std::path::PathBuf::from("/var/lib/raftfs/block")]
        );
        assert_eq!(c.metaservers.len(), 3);
    }

    #[test]
    fn defaults_are_valid_and_written_configs_read_back() {
        let c = Config::default();
        c.validate().expect("defaults valid");
        let text = toml::to_string_pretty(&c).expect("serializes");
        let back: Config = toml::from_str(&text).expect("reads back");
        assert_eq!(back.data_dirs, c.data_dirs);
        assert_eq!(back.heartbeat_ms, 1000);
    }

    #[test]
    fn rejects_unworkable_settings() {
        let ok = Config::default();
        let cases: Vec<(&str, Config)> = vec![
            (
                "id 0",
                Config {
                    id: 0,
                    ..ok.clone()
                },
            ),
            (
                "wildcard without advertise",
                Config {
                    listen: "0.0.0.0:7080".parse().expect("addr"),
                    ..ok.clone()
                },
            ),
            (
                "no data dirs",
                Config {
                    data_dirs: vec![],
                    ..ok.clone()
                },
            ),
            (
                "duplicate data dirs",
                Config {
                    data_dirs: vec!["a".into(), "a".into()],
                    ..ok.clone()
                },
            ),
            (
                "empty rack",
                Config {
                    rack: String::new(),
                    ..ok.clone()
                },
            ),
            (
                "heartbeat 0",
                Config {
                    heartbeat_ms: 0,
                    ..ok.clone()
                },
            ),
            (
                "split 0",
                Config {
                    report_split_blocks: 0,
                    ..ok.clone()
                },
            ),
            (
                "scan period 0",
                Config {
                    scan_period_secs: 0,
                    ..ok.clone()
                },
            ),
        ];
        for (what, c) in cases {
            assert!(c.validate().is_err(), "{what} accepted");
        }
        assert!(toml::from_str::<Config>("no-such-field = 1").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let args = ServeArgs {
            config: None,
            id: Some(7),
            listen: None,
            advertise: Some("b7:7080".into()),
            rack: Some("r2".into()),
            data_dirs: vec!["/d1".into(), "/d2".into()],
            metaservers: vec!["m1:7070".into()],
            heartbeat_ms: None,
            full_report_secs: None,
            report_split_blocks: Some(5),
            reserved_bytes: Some(1 << 30),
            metrics_addr: None,
            scan_bytes_per_sec: Some(0),
            scan_period_secs: None,
        };
        let c = args.into_config().expect("valid");
        assert_eq!((c.id, c.rack.as_str()), (7, "r2"));
        assert_eq!(c.scan_bytes_per_sec, 0, "scanning off");
        assert_eq!(c.data_dirs.len(), 2);
        assert_eq!(c.report_split_blocks, 5);
        assert_eq!(c.reserved_bytes, 1 << 30);
    }
}
