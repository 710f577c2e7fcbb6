//! The mount table as a router knows it: read from the nameservice that keeps it (on its
//! active) every poll period, again at once when a call names a path under no mount point (a
//! mount added a moment ago, through another router), and again before any call whose client
//! was routed by a newer table (`state_ids::TABLE_ENTRY`: the keeper state a router read its
//! table at, carried in every answer). So a client that added a mount through a router (or
//! was handed a token of one that did) is routed by it from its next call on, through every
//! router, and no client is routed by an older table than before. A mount that takes over
//! paths a default nameservice answered reaches a client that knows nothing of it within one
//! poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use raftfs_client::Client;
use raftfs_core::federation::{FederationError, MountTable, NameserviceId};
use tokio::sync::{Mutex, RwLock};

use crate::error::RouterError;

/// The table and the keeper's state ID it was read at.
type Read = (Arc<MountTable>, u64);

/// The router's copy of the mount table.
#[derive(Debug)]
pub struct Table {
    keeper: NameserviceId,
    client: Client,
    current: RwLock<Option<Read>>,
    /// The keeper state the current table was read at (0: never read), for answers.
    read_at: AtomicU64,
    metrics: Arc<crate::metrics::Metrics>,
    /// Held while reading the table; when the last read began. Calls that miss together
    /// share one read: a client calling paths under no mount point cannot make the router
    /// read the table more than one at a time.
    refreshing: Mutex<Option<Instant>>,
}

impl Table {
    pub fn new(
        keeper: NameserviceId,
        client: Client,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            keeper,
            client,
            metrics,
            current: RwLock::new(None),
            read_at: AtomicU64::new(0),
            refreshing: Mutex::new(None),
        }
    }

    /// The keeper state the table in use was read at (0: not read yet).
    pub fn read_at(&self) -> u64 {
        self.read_at.load(Ordering::Acquire)
    }

    /// The nameservice that keeps the table.
    pub fn keeper(&self) -> &NameserviceId {
        &self.keeper
    }

    /// Reads the table from its keeper now, at a state at least `at_least`.
    pub async fn refresh(&self, at_least: u64) -> Result<Arc<MountTable>, RouterError> {
        let asked = Instant::now();
        let mut last = self.refreshing.lock().await;
        if let Some((t, at)) = self.current.read().await.clone()
            && at >= at_least
            && last.is_some_and(|began| began >= asked)
        {
            // Read by another call that began after this one asked: as new as a read now.
            return Ok(t);
        }
        let began = Instant::now();
        let read = self.client.mount_table_at(at_least).await;
        self.metrics
            .table_read(read.as_ref().ok().map(|(t, at)| (*at, t.len())));
        let (table, at) = read.map_err(RouterError::upstream(&self.keeper))?;
        let table = Arc::new(table);
        let mut current = self.current.write().await;
        // Never back to an older read (two refreshes that raced).
        if current.as_ref().is_none_or(|(_, was)| *was <= at) {
            *current = Some((table.clone(), at));
            self.read_at.store(at, Ordering::Release);
        }
        *last = Some(began);
        Ok(table)
    }

    /// The table, read at a state at least `at_least` of the keeper (the caller's own
    /// state ID of it; 0 when it has none).
    pub async fn get(&self, at_least: u64) -> Result<Arc<MountTable>, RouterError> {
        if let Some((t, at)) = self.current.read().await.clone()
            && at >= at_least
        {
            return Ok(t);
        }
        self.refresh(at_least)
            .await
            .map_err(|e| RouterError::NoTable(e.to_string()))
    }

    /// `f` on the table (at least `at_least`); when it finds a path under no mount point,
    /// on the table read again.
    pub async fn with<T>(
        &self,
        at_least: u64,
        f: impl Fn(&MountTable) -> Result<T, FederationError>,
    ) -> Result<(Arc<MountTable>, T), RouterError> {
        let table = self.get(at_least).await?;
        match f(&table) {
            Err(FederationError::NotMounted(_)) => {
                let table = self.refresh(at_least).await?;
                let v = f(&table)?;
                Ok((table, v))
            }
            r => Ok((table, r?)),
        }
    }
}
