//! Who a request acts as. Over HTTPS (`swebhdfs`) a caller is the user its client certificate
//! names (common name, and its organizations as groups), verified against the cluster's CA
//! in the handshake; over HTTP it names itself (`user.name`), as HDFS's simple
//! authentication allows, and without `user.name` it is HDFS's anonymous `dr.who`.
//!
//! The gateway calls the cluster as that user, through a client of that user's own (one per
//! user, kept: its connections, its state ID, so that a user reads its own writes through the
//! gateway; a user is its name and its certificate's groups). A gateway with a certificate
//! of its own acts for the user (`ClientConfig::act_as`): the servers' proxy rule for the
//! gateway decides (DESIGN §9); it serves only certified callers. A gateway without one
//! claims the user's name, which only a port in simple mode accepts.

use std::collections::HashMap;
use std::sync::Mutex;

use raftfs_client::{Client, ClientConfig};
use raftfs_core::identity::User;

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
    clients: Mutex<HashMap<User, (u64, Client)>>,
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

    /// The client of `user`.
    pub fn client(&self, user: &User) -> Result<Client, GatewayError> {
        let tick = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((used, c)) = clients.get_mut(user) {
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
        let client = self.fresh(user)?;
        clients.insert(user.clone(), (tick, client.clone()));
        Ok(client)
    }

    /// A client of `user` for one upload (`CREATE`, `APPEND`): a lease holder of its own,
    /// as HDFS gives each WebHDFS write its own DFSClient. Two uploads of one user then
    /// conflict on the file's lease instead of writing its groups over each other, and an
    /// upload its caller abandoned stops renewing its lease, so the file is recovered.
    /// [`Users::seen`] hands what it wrote to the user's reads.
    pub fn writer(&self, user: &User) -> Result<Client, GatewayError> {
        self.fresh(user)
    }

    /// Raises `user`'s client to what `writer` has seen: the user reads its own upload.
    pub fn seen(&self, user: &User, writer: &Client) -> Result<(), GatewayError> {
        self.client(user)?.observe(writer.state_id());
        Ok(())
    }

    /// Whether the gateway calls the cluster with a certificate of its own, acting for its
    /// users. Such a gateway serves only users its callers' certificates name: acting for a
    /// `user.name` nobody verified would let anyone who reaches the gateway past a cluster
    /// that requires certificates.
    pub fn acts_for_users(&self) -> bool {
        self.base.tls.as_ref().is_some_and(|t| t.has_certificate())
    }

    /// A new client of `user`: acting for it with the gateway's certificate, claiming its
    /// name without one.
    fn fresh(&self, user: &User) -> Result<Client, GatewayError> {
        let mut config = self.base.clone();
        config.user = user.name.clone();
        if self.acts_for_users() {
            config.act_as = Some(user.clone());
        }
        Ok(Client::new(config)?)
    }
}

/// The user of a simple-mode request: the one `user.name` names (`dr.who` when none), if it
/// is a name HDFS accepts.
pub fn named(user: Option<&str>) -> Result<User, GatewayError> {
    let name = user.unwrap_or(ANONYMOUS);
    match raftfs_core::identity::valid_name(name) {
        Ok(_) => Ok(User::named(name)),
        Err(_) => Err(GatewayError::BadRequest(format!(
            "invalid value for user.name: {name:?}"
        ))),
    }
}
