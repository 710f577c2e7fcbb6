//! The router's configuration: TOML (`etc/router.toml` documents every field) with flags
//! over it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use raftfs_core::federation::NameserviceId;
use serde::Deserialize;

/// One nameservice the router forwards to, and its members (any of them: the router finds
/// the active and the observers as a client does).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NameserviceConfig {
    pub name: NameserviceId,
    pub metaservers: Vec<String>,
}

/// Everything a router is told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Where clients call (the client protocol: `Namespace`, and `Admin.Members`).
    pub listen_addr: SocketAddr,
    /// Prometheus `/metrics` (none: not served).
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// The nameservices of the federation, each with its members.
    pub nameservices: Vec<NameserviceConfig>,
    /// The nameservice whose journal keeps the mount table (DESIGN §10).
    pub mount_table: NameserviceId,
    /// How often the mount table is read again (a mount added while clients run is seen
    /// within this, or at once by a call that missed it).
    #[serde(default = "default_table_poll_ms")]
    pub table_poll_ms: u64,
    /// How long a forwarded call keeps retrying across one nameservice's failover: below the
    /// clients' own attempt timeout (10 s by default), so that a client hears the router's
    /// answer, not its own timeout.
    #[serde(default = "default_failover_deadline_ms")]
    pub failover_deadline_ms: u64,
    /// How long one forwarded attempt may take.
    #[serde(default = "default_rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    /// How long a read on one observer may take before the next is tried.
    #[serde(default = "default_observer_timeout_ms")]
    pub observer_timeout_ms: u64,
    /// Debug builds only: forward an older state ID than the client saw of the nameservice a
    /// call goes to (another nameservice's where that is older, else none: the router bug of
    /// HDFS-17156), so that the Jepsen harness can show it finds the stale reads.
    #[serde(default)]
    pub debug_wrong_state_id: bool,
}

fn default_table_poll_ms() -> u64 {
    1_000
}
fn default_failover_deadline_ms() -> u64 {
    8_000
}
fn default_rpc_timeout_ms() -> u64 {
    3_000
}
fn default_observer_timeout_ms() -> u64 {
    1_000
}

/// A configuration that cannot be served as written.
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
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads and checks a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses what cannot work: no nameservice, one named twice or without members, a
    /// table kept by a nameservice the router cannot reach, the debug switch in a release
    /// build.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |s: String| Err(ConfigError::Invalid(s));
        if self.nameservices.is_empty() {
            return invalid("no [[nameservices]]".into());
        }
        let mut names = BTreeSet::new();
        for ns in &self.nameservices {
            if !names.insert(&ns.name) {
                return invalid(format!("nameservice {} is listed twice", ns.name));
            }
            if ns.metaservers.is_empty() {
                return invalid(format!("nameservice {} lists no metaservers", ns.name));
            }
        }
        if !names.contains(&self.mount_table) {
            return invalid(format!(
                "mount-table names {}, which is not among the nameservices",
                self.mount_table
            ));
        }
        if self.table_poll_ms == 0 || self.failover_deadline_ms == 0 || self.rpc_timeout_ms == 0 {
            return invalid("periods and deadlines must be above 0".into());
        }
        if self.debug_wrong_state_id && !cfg!(debug_assertions) {
            return invalid("debug-wrong-state-id exists in debug builds only".into());
        }
        Ok(())
    }

    pub fn table_poll(&self) -> Duration {
        Duration::from_millis(self.table_poll_ms)
    }
}

/// The router's flags (the `router` binary's, and `metactl serve-router`'s).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Listen address (overrides the file's).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

impl ServeArgs {
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut config = Config::load(&self.config)?;
        if let Some(listen) = self.listen {
            config.listen_addr = listen;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    const GOOD: &str = r#"
        listen-addr = "127.0.0.1:7000"
        mount-table = "ns1"
        [[nameservices]]
        name = "ns1"
        metaservers = ["127.0.0.1:7001"]
        [[nameservices]]
        name = "ns2"
        metaservers = ["127.0.0.1:7002"]
    "#;

    #[test]
    fn a_federation_of_two_parses_with_defaults() {
        let c = parse(GOOD).expect("valid");
        assert_eq!(c.nameservices.len(), 2);
        assert_eq!(c.table_poll(), Duration::from_secs(1));
        assert!(!c.debug_wrong_state_id);
    }

    /// `etc/router.toml` documents every field, and is a valid configuration.
    #[test]
    fn the_example_configuration_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/router.toml");
        let c = Config::load(&path).expect("etc/router.toml");
        assert_eq!(c.mount_table.as_str(), "ns1");
        assert_eq!(c.nameservices.len(), 2);
    }

    #[test]
    fn what_cannot_work_is_refused() {
        let twice = GOOD.replace("name = \"ns2\"", "name = \"ns1\"");
        assert!(parse(&twice).expect_err("refused").contains("twice"));
        let keeper = GOOD.replace("mount-table = \"ns1\"", "mount-table = \"ns3\"");
        assert!(parse(&keeper).expect_err("refused").contains("not among"));
        let bad_name = GOOD.replace("name = \"ns2\"", "name = \"NS 2\"");
        assert!(parse(&bad_name).is_err());
        let empty = GOOD.replace("metaservers = [\"127.0.0.1:7002\"]", "metaservers = []");
        assert!(
            parse(&empty)
                .expect_err("refused")
                .contains("no metaservers")
        );
        let unknown = format!("{GOOD}\nfoo = 1");
        assert!(parse(&unknown).is_err());
    }
}
