//! Keeping a writer's lease alive: while a [`LeaseRenewal`] exists, the client renews its
//! lease every `lease_renew_interval`. When the writer's process dies the renewals stop, the
//! lease expires on the metaservers, and the active's lease recovery closes the file.

use tokio::task::JoinHandle;

use crate::client::Client;

/// Renews the client's lease until dropped.
#[derive(Debug)]
pub struct LeaseRenewal {
    task: JoinHandle<()>,
}

impl LeaseRenewal {
    pub fn start(client: &Client) -> Self {
        let client = client.clone();
        let every = client.config().lease_renew_interval;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = client.renew_lease().await {
                    tracing::warn!(error = %e, "lease renewal failed; will retry");
                }
            }
        });
        Self { task }
    }
}

impl Drop for LeaseRenewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}
