//! The mount table as a router knows it: read from the nameservice that keeps it every poll
//! period, and again at once when a call names a path under no mount point (a mount added a
//! moment ago), so that every router sees a new mount within one poll.

use std::sync::Arc;
use std::time::{Duration, Instant};

use raftfs_client::Client;
use raftfs_core::federation::{FederationError, MountTable, NameserviceId};
use tokio::sync::{Mutex, RwLock};

use crate::error::RouterError;

/// A miss refreshes the table at most this often: a client calling paths under no mount
/// point must not turn every call into a read of the keeper.
const MISS_REFRESH_EVERY: Duration = Duration::from_millis(100);

/// The router's copy of the mount table.
#[derive(Debug)]
pub struct Table {
    keeper: NameserviceId,
    client: Client,
    current: RwLock<Option<Arc<MountTable>>>,
    /// Held while reading the table; when it was last read.
    refreshing: Mutex<Option<Instant>>,
}

impl Table {
    pub fn new(keeper: NameserviceId, client: Client) -> Self {
        Self {
            keeper,
            client,
            current: RwLock::new(None),
            refreshing: Mutex::new(None),
        }
    }

    /// The nameservice that keeps the table.
    pub fn keeper(&self) -> &NameserviceId {
        &self.keeper
    }

    /// Reads the table from its keeper now.
    pub async fn refresh(&self) -> Result<Arc<MountTable>, RouterError> {
        let mut last = self.refreshing.lock().await;
        let table = Arc::new(
            self.client
                .mount_table()
                .await
                .map_err(RouterError::upstream(&self.keeper))?,
        );
        *self.current.write().await = Some(table.clone());
        *last = Some(Instant::now());
        Ok(table)
    }

    /// Refreshes after a miss, unless the table was read a moment ago.
    async fn refresh_after_miss(&self) -> Result<Arc<MountTable>, RouterError> {
        let recent = self
            .refreshing
            .lock()
            .await
            .is_some_and(|t| t.elapsed() < MISS_REFRESH_EVERY);
        match self.current.read().await.clone() {
            Some(t) if recent => Ok(t),
            _ => self.refresh().await,
        }
    }

    /// The table as last read (read now when it never was).
    pub async fn get(&self) -> Result<Arc<MountTable>, RouterError> {
        if let Some(t) = self.current.read().await.clone() {
            return Ok(t);
        }
        self.refresh()
            .await
            .map_err(|e| RouterError::NoTable(e.to_string()))
    }

    /// `f` on the table; when it finds a path under no mount point, on the table read again.
    pub async fn with<T>(
        &self,
        f: impl Fn(&MountTable) -> Result<T, FederationError>,
    ) -> Result<(Arc<MountTable>, T), RouterError> {
        let table = self.get().await?;
        match f(&table) {
            Err(FederationError::NotMounted(_)) => {
                let table = self.refresh_after_miss().await?;
                let v = f(&table)?;
                Ok((table, v))
            }
            r => Ok((table, r?)),
        }
    }
}
