//! Who a request acts as. In simple mode a WebHDFS caller names itself (`user.name`), as
//! HDFS's simple authentication allows; the gateway then calls the cluster as that user,
//! through a client of that user's own (one per user, kept: its connections, its state ID,
//! so that a user reads its own writes through the gateway). Without `user.name` a caller is
//! HDFS's anonymous `dr.who`.
//!
//! A client claims its user on a metaserver port that allows simple mode; a cluster that
//! requires certificates refuses the claim, and every call comes back `AccessControlException`.

use std::collections::HashMap;
use std::sync::Mutex;

use raftfs_client::{Client, ClientConfig};

use crate::error::GatewayError;

/// The user of a request that names none (HDFS's `hadoop.http.staticuser.user`).
pub const ANONYMOUS: &str = "dr.who";

/// At most this many users' clients are kept; past it the oldest is dropped (its next
/// request opens a new one).
const MAX_USERS: usize = 1024;

/// The clients, one per user.
#[derive(Debug)]
pub struct Users {
    base: ClientConfig,
    clients: Mutex<HashMap<String, (u64, Client)>>,
    uses: std::sync::atomic::AtomicU64,
}

impl Users {
    /// Clients made from `base` (addresses, TLS, timeouts), each with its user's name.
    pub fn new(base: ClientConfig) -> Self {
        Self {
            base,
            clients: Mutex::new(HashMap::new()),
            uses: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The client of `user` (the anonymous user when none is named).
    pub fn client(&self, user: Option<&str>) -> Result<Client, GatewayError> {
        let name = user.unwrap_or(ANONYMOUS);
        if raftfs_core::identity::valid_name(name).is_err() {
            return Err(GatewayError::BadUser(format!(
                "{name:?} is not a valid user name"
            )));
        }
        let tick = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((used, c)) = clients.get_mut(name) {
            *used = tick;
            return Ok(c.clone());
        }
        if clients.len() >= MAX_USERS
            && let Some(oldest) = clients
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone())
        {
            clients.remove(&oldest);
        }
        let mut config = self.base.clone();
        config.user = name.to_owned();
        let client = Client::new(config)?;
        clients.insert(name.to_owned(), (tick, client.clone()));
        Ok(client)
    }
}
