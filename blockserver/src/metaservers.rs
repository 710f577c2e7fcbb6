//! The metaservers this blockserver talks to: one lazily connected HTTP/2 channel each,
//! shared by the heartbeat task of that metaserver and by corrupt-block reports.
//!
//! Every metaserver gets everything (DESIGN §6): block locations are soft state that each of
//! them rebuilds from reports, so a standby or an observer that becomes the active already
//! knows where the blocks are.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raftfs_proto as pb;
use raftfs_proto::block_servers_client::BlockServersClient;
use raftfs_proto::namespace_client::NamespaceClient;
use raftfs_runtime::Dialer;
use tonic::transport::Channel;

use crate::config::PoolConfig;
use crate::metrics::Metrics;
use crate::pools::Pool;
use crate::store::BlockId;

/// How long a connection attempt to a metaserver may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one RPC to a metaserver may take (a full report part of 10 000 blocks is a few
/// hundred KiB).
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// A metaserver address that is not a valid URI.
#[derive(Debug, thiserror::Error)]
#[error("metaserver address {addr:?}: {reason}")]
pub struct BadAddress {
    pub addr: String,
    pub reason: String,
}

/// The channel to one metaserver.
#[derive(Debug, Clone)]
pub struct MetaLink {
    /// The address as configured.
    pub addr: String,
    /// The pool of the nameservice this metaserver is a member of (DESIGN §10).
    pub pool: Pool,
    channel: Channel,
}

impl MetaLink {
    /// Opens (lazily: the first RPC connects, and a lost connection is reopened) the channel
    /// to `addr` (`host:port`), over TLS with this server's certificate when `dialer` has one.
    pub fn connect(dialer: &Dialer, addr: &str, pool: Pool) -> Result<Self, BadAddress> {
        let endpoint = dialer.endpoint(addr).map_err(|e| BadAddress {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?;
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(RPC_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Self {
            addr: addr.to_owned(),
            pool,
            channel,
        })
    }

    /// Registration, heartbeats and block reports.
    pub fn block_servers(&self) -> BlockServersClient<Channel> {
        BlockServersClient::new(self.channel.clone())
    }

    /// The namespace service (corrupt-block reports).
    pub fn namespace(&self) -> NamespaceClient<Channel> {
        NamespaceClient::new(self.channel.clone())
    }
}

/// Every metaserver.
#[derive(Debug, Clone)]
pub struct Metaservers {
    node_id: u64,
    links: Vec<MetaLink>,
    metrics: Arc<Metrics>,
    calls: Arc<AtomicU64>,
}

impl Metaservers {
    /// Channels to every member of every pool's nameservice (none connects yet).
    pub fn connect(
        node_id: u64,
        dialer: &Dialer,
        pools: &[PoolConfig],
        metrics: Arc<Metrics>,
    ) -> Result<Self, BadAddress> {
        Ok(Self {
            node_id,
            links: pools
                .iter()
                .flat_map(|p| p.metaservers.iter().map(|a| (a, p.pool.clone())))
                .map(|(a, pool)| MetaLink::connect(dialer, a, pool))
                .collect::<Result<_, _>>()?,
            metrics,
            calls: Arc::new(AtomicU64::new(1)),
        })
    }

    /// The links, one per metaserver.
    pub fn links(&self) -> &[MetaLink] {
        &self.links
    }

    /// Tells every metaserver of the block's nameservice, in the background, that this
    /// server's copy of `block` is corrupt; only the active acts on it (the others refuse,
    /// which is fine). Fire and forget: the reader already has its error, and a lost report
    /// is made good by the next reader that finds the same corruption.
    pub fn report_corrupt(&self, block: BlockId, reason: String) {
        for link in self.links.iter().filter(|l| l.pool.id == block.pool) {
            let request = pb::ReportCorruptRequest {
                header: Some(pb::RequestHeader {
                    client_id: format!("blockserver-{}", self.node_id).into_bytes(),
                    call_id: self.calls.fetch_add(1, Ordering::Relaxed),
                    ..Default::default()
                }),
                group: block.group,
                index: u32::from(block.index),
                node_id: self.node_id,
                reason: reason.clone(),
                nameservice: link.pool.wire_name().to_owned(),
            };
            let (mut client, addr, metrics) =
                (link.namespace(), link.addr.clone(), self.metrics.clone());
            tokio::spawn(async move {
                let r = client.report_corrupt(request).await;
                metrics.observe_meta_rpc("report_corrupt", r.is_ok());
                match r {
                    Ok(_) => tracing::info!(%block, metaserver = %addr, "corrupt block reported"),
                    Err(e) => tracing::debug!(
                        %block, metaserver = %addr, error = %e, "corrupt block report refused"
                    ),
                }
            });
        }
    }
}
