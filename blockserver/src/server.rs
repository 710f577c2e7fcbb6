//! Starting a blockserver: volumes, the data service, one heartbeat task per metaserver and
//! metrics, wired together; and stopping it cleanly on a signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use raftfs_proto::block_data_server::BlockDataServer;

use crate::config::{Config, ConfigError};
use crate::error::BlockError;
use crate::heartbeat::{self, NodeInfo};
use crate::metaservers::{BadAddress, Metaservers};
use crate::metrics::Metrics;
use crate::reconstruction::Worker;
use crate::service::{BlockDataService, BlockNode, MAX_DATA_MESSAGE};
use crate::volumes::Volumes;

pub use raftfs_runtime::{Listeners, signal};

/// How long the heartbeat tasks get to notice a shutdown before they are left behind.
const TASK_GRACE: Duration = Duration::from_secs(2);

/// Why a blockserver could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("opening volumes: {0}")]
    Volumes(#[from] BlockError),
    #[error(transparent)]
    Metaserver(#[from] BadAddress),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Serve(#[from] raftfs_runtime::ServeError),
    #[error("tls: {0}")]
    Tls(#[from] raftfs_runtime::TlsError),
}

/// Binds the addresses `config` names: every port, the advertised one first, and metrics.
pub fn listeners(config: &Config) -> std::io::Result<Listeners> {
    Listeners::bind(&rpc_addrs(config), config.metrics_addr)
}

/// The addresses of every gRPC port, in the order their listeners are bound or handed down.
pub fn rpc_addrs(config: &Config) -> Vec<std::net::SocketAddr> {
    let ports = config.security.ports(config.listen);
    ports.iter().map(|p| p.addr).collect()
}

/// Runs a blockserver on already bound `listeners` (the addresses in `config` are not bound
/// again) until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let tls = config.security.material()?;
    let dialer = raftfs_runtime::Dialer::new(tls.as_ref());
    let (rpc_listeners, metrics_listener) = listeners.into_tokio()?;
    let ports = config.security.ports(config.listen);
    let Some(first) = rpc_listeners.first() else {
        return Err(ServerError::Io(std::io::Error::other("no gRPC listener")));
    };
    if rpc_listeners.len() != ports.len() {
        return Err(ServerError::Io(std::io::Error::other(format!(
            "{} listeners for {} configured ports",
            rpc_listeners.len(),
            ports.len()
        ))));
    }
    let bound = first.local_addr()?;
    let advertise = config.advertised(bound);
    let pools = config.pools();
    warn_of_unkept_blocks(&config.data_dirs, &pools);
    let (dirs, reserved) = (config.data_dirs.clone(), config.reserved_bytes);
    let kept: Vec<_> = pools.iter().map(|p| p.pool.clone()).collect();
    let volumes = tokio::task::spawn_blocking(move || Volumes::open(&dirs, &kept, reserved))
        .await
        .map_err(BlockError::from)??;
    let volumes = Arc::new(volumes);
    let metrics = Arc::new(Metrics::new());
    let metaservers = Metaservers::connect(config.id, &dialer, &pools, metrics.clone())?;
    if metaservers.links().is_empty() {
        tracing::warn!("no metaservers configured: serving data, reporting to nobody");
    }

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let pool_ids: Vec<u64> = pools.iter().map(|p| p.pool.id).collect();
    let keys = Arc::new(crate::tokens::Keys::new(tls.is_none(), &pool_ids));
    let worker = Worker::new(
        volumes.clone(),
        metrics.clone(),
        config.rack.clone(),
        dialer,
    );
    let mut tasks = heartbeat::spawn(
        NodeInfo {
            id: config.id,
            addr: advertise.clone(),
            rack: config.rack.clone(),
            heartbeat: config.heartbeat(),
            full_report_period: config.full_report_period(),
            report_split_blocks: config.report_split_blocks,
        },
        &metaservers,
        volumes.clone(),
        metrics.clone(),
        worker.clone(),
        keys.clone(),
        stopped.clone(),
    );

    let scan = crate::scanner::SharedProgress::default();
    tasks.extend(crate::scanner::spawn(
        config.scan_policy(),
        volumes.clone(),
        metaservers.clone(),
        metrics.clone(),
        scan.clone(),
        stopped.clone(),
    ));

    if let Some(listener) = metrics_listener {
        let (m, v, x) = (metrics.clone(), volumes.clone(), worker.xmits.clone());
        let ui = crate::ui::routes(crate::ui::Sources {
            id: config.id,
            addr: advertise.clone(),
            volumes: volumes.clone(),
            worker: worker.clone(),
            scan,
            metaservers: metaservers.clone(),
            started_ms: raftfs_runtime::simulation::now_ms(),
        });
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let until = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = crate::metrics::serve(listener, m, v, x, ui, until).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }

    let node = Arc::new(BlockNode {
        id: config.id,
        volumes,
        metrics,
        metaservers,
        worker,
        authorizer: raftfs_core::identity::Authorizer::without_admins(tls.is_none()),
        keys,
        write_idle: std::time::Duration::from_secs(config.write_idle_secs),
        streams: Arc::default(),
    });
    let storage = node.volumes.storage();
    tracing::info!(
        id = config.id, addr = %bound, %advertise, rack = %config.rack,
        volumes = storage.volumes, failed_volumes = storage.failed_volumes,
        "blockserver listening"
    );
    for p in &ports {
        tracing::info!(addr = %p.addr, policy = %p.policy, simple = p.simple, "port");
    }
    let routes = tonic::service::Routes::new(
        BlockDataServer::new(BlockDataService::new(node))
            .max_decoding_message_size(MAX_DATA_MESSAGE)
            .max_encoding_message_size(MAX_DATA_MESSAGE),
    );
    let ports = rpc_listeners.into_iter().zip(ports).collect();
    let result = raftfs_runtime::serve_ports(
        routes,
        ports,
        tls.as_ref(),
        &config.security.proxy_users,
        shutdown,
    )
    .await;
    let _ = stop.send(true);
    for task in tasks {
        if tokio::time::timeout(TASK_GRACE, task).await.is_err() {
            tracing::warn!("a heartbeat task did not stop in time");
        }
    }
    result.map_err(ServerError::from)
}

/// Says so, loudly, when a data directory holds blocks of the unnamed pool (a cluster of
/// before federation, or one configured with `metaservers`) but the configuration keeps no
/// such pool: those blocks are not opened, reported, counted or collected until it does.
fn warn_of_unkept_blocks(dirs: &[std::path::PathBuf], pools: &[crate::config::PoolConfig]) {
    if pools.iter().any(|p| p.pool.name.is_none()) {
        return;
    }
    for dir in dirs {
        let finalized = dir.join("finalized");
        let held = std::fs::read_dir(&finalized).is_ok_and(|mut d| d.next().is_some());
        if held {
            tracing::warn!(
                dir = %finalized.display(),
                "blocks of the unnamed pool are here, but no `metaservers` are configured for it: \
                 they are not reported to anyone (keep the unnamed nameservice's `metaservers` \
                 until they are moved)"
            );
        }
    }
}

/// Installs the log subscriber (`RUST_LOG`, default `info`).
pub fn init_tracing() {
    raftfs_runtime::init_tracing("info");
}
