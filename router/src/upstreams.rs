//! The nameservices a router forwards to: one client-crate [`Client`] each, whose failover
//! and observer logic (not a copy of it) finds each nameservice's active and observers.

use std::collections::BTreeMap;
use std::time::Duration;

use raftfs_client::{Client, ClientConfig, ReadMode};
use raftfs_core::federation::NameserviceId;

use crate::config::Config;
use crate::error::RouterError;

/// The user the router's own calls claim (reading the mount table); a forwarded call claims
/// its caller's name instead.
pub const ROUTER_USER: &str = "raftfs-router";

/// One client per nameservice.
#[derive(Debug)]
pub struct Upstreams {
    by_name: BTreeMap<NameserviceId, Client>,
}

/// How long one read of the mount table may keep trying: a table read at a state the keeper
/// has not reached (a bogus `@mount-table` entry) fails this soon.
const TABLE_READ_DEADLINE: Duration = Duration::from_secs(2);

impl Upstreams {
    /// Clients for every nameservice of `config` (connections open lazily).
    pub fn new(config: &Config) -> Result<Self, raftfs_client::ClientError> {
        let mut by_name = BTreeMap::new();
        for ns in &config.nameservices {
            by_name.insert(
                ns.name.clone(),
                Self::client(config, &ns.metaservers, None)?,
            );
        }
        Ok(Self { by_name })
    }

    /// A client of its own for reading the mount table from its keeper (on the active, with
    /// a short deadline; its state IDs apart from the forwarded calls').
    pub fn table_reader(&self, config: &Config) -> Result<Client, raftfs_client::ClientError> {
        let keeper = config
            .nameservices
            .iter()
            .find(|ns| ns.name == config.mount_table)
            .ok_or_else(|| {
                raftfs_client::ClientError::Config(format!(
                    "no members for the mount table's nameservice {}",
                    config.mount_table
                ))
            })?;
        Self::client(config, &keeper.metaservers, Some(TABLE_READ_DEADLINE))
    }

    fn client(
        config: &Config,
        metas: &[String],
        deadline: Option<Duration>,
    ) -> Result<Client, raftfs_client::ClientError> {
        let mut c = ClientConfig::new(metas.to_vec());
        c.user = ROUTER_USER.to_owned();
        // The router's own reads (the mount table) on the active: linearizable, so a table
        // read after a miss sees a mount added a moment ago through another router. A
        // forwarded read goes to observers when its caller allows it, whatever this says
        // (`Client::forward`).
        c.read_mode = ReadMode::Active;
        c.failover_deadline = Duration::from_millis(config.failover_deadline_ms);
        c.rpc_timeout = Duration::from_millis(config.rpc_timeout_ms);
        c.observer_timeout = Duration::from_millis(config.observer_timeout_ms);
        if let Some(d) = deadline {
            c.failover_deadline = c.failover_deadline.min(d);
        }
        Client::new(c)
    }

    /// The client of nameservice `ns`.
    pub fn get(&self, ns: &NameserviceId) -> Result<&Client, RouterError> {
        self.by_name
            .get(ns)
            .ok_or_else(|| RouterError::UnknownNameservice(ns.to_string()))
    }

    /// The nameservice named `name`, when this router forwards to it.
    pub fn known(&self, name: &str) -> Option<(&NameserviceId, &Client)> {
        self.by_name.iter().find(|(ns, _)| ns.as_str() == name)
    }
}
