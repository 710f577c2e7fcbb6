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
        let name = checked(user)?;
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
        let client = self.fresh(name)?;
        clients.insert(name.to_owned(), (tick, client.clone()));
        Ok(client)
    }

    /// A client of `user` for one upload (`CREATE`, `APPEND`): a lease holder of its own,
    /// as HDFS gives each WebHDFS write its own DFSClient. Two uploads of one user then
    /// conflict on the file's lease instead of writing its groups over each other, and an
    /// upload its caller abandoned stops renewing its lease, so the file is recovered.
    /// [`Users::seen`] hands what it wrote to the user's reads.
    pub fn writer(&self, user: Option<&str>) -> Result<Client, GatewayError> {
        self.fresh(checked(user)?)
    }

    /// Raises `user`'s client to what `writer` has seen: the user reads its own upload.
    pub fn seen(&self, user: Option<&str>, writer: &Client) -> Result<(), GatewayError> {
        self.client(user)?.observe(writer.state_id());
        Ok(())
    }

    fn fresh(&self, name: &str) -> Result<Client, GatewayError> {
        let mut config = self.base.clone();
        config.user = name.to_owned();
        Ok(Client::new(config)?)
    }
}

/// The user a request names (`dr.who` when none), if it is a name HDFS accepts.
fn checked(user: Option<&str>) -> Result<&str, GatewayError> {
    let name = user.unwrap_or(ANONYMOUS);
    match raftfs_core::identity::valid_name(name) {
        Ok(_) => Ok(name),
        Err(_) => Err(GatewayError::BadRequest(format!(
            "invalid value for user.name: {name:?}"
        ))),
    }
}
