//! Starting a blockserver: volumes, the data service, one heartbeat task per metaserver and
//! metrics, wired together; and stopping it cleanly on a signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use raftfs_proto::block_data_server::BlockDataServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::{Config, ConfigError};
use crate::error::BlockError;
use crate::heartbeat::{self, NodeInfo};
use crate::metaservers::{BadAddress, Metaservers};
use crate::metrics::Metrics;
use crate::reconstruction::Worker;
use crate::service::{BlockDataService, BlockNode, MAX_DATA_MESSAGE};
use crate::volumes::Volumes;

/// How long the heartbeat tasks get to notice a shutdown before they are left behind.
const TASK_GRACE: Duration = Duration::from_secs(2);

/// Why a blockserver could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Metaserver(#[from] BadAddress),
    #[error("opening volumes: {0}")]
    Volumes(#[from] BlockError),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The sockets a blockserver serves on, bound before it starts. Whoever starts the server may
/// bind them itself and hand them down (as systemd's socket activation, or `metactl local`,
/// does): then the ports are held from the moment they are chosen, and no other process can
/// take them before the server listens. Tests bind port 0 and learn the address first.
#[derive(Debug)]
pub struct Listeners {
    /// The data service, at `config.listen`.
    pub rpc: std::net::TcpListener,
    /// `/metrics`, at `config.metrics_addr` (none when that is unset).
    pub metrics: Option<std::net::TcpListener>,
}

impl Listeners {
    /// Binds the addresses `config` names.
    pub fn bind(config: &Config) -> std::io::Result<Self> {
        Ok(Self {
            rpc: std::net::TcpListener::bind(config.listen)?,
            metrics: config
                .metrics_addr
                .map(std::net::TcpListener::bind)
                .transpose()?,
        })
    }
}

/// Runs a blockserver on the addresses `config` names until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let listeners = Listeners::bind(&config)?;
    serve(config, listeners, shutdown).await
}

/// Runs a blockserver on already bound `listeners` (the addresses in `config` are not bound
/// again) until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let listener = tokio_listener(listeners.rpc)?;
    let metrics_listener = listeners.metrics.map(tokio_listener).transpose()?;
    let bound = listener.local_addr()?;
    let advertise = config.advertised(bound);
    let (dirs, reserved) = (config.data_dirs.clone(), config.reserved_bytes);
    let volumes = tokio::task::spawn_blocking(move || Volumes::open(&dirs, reserved))
        .await
        .map_err(BlockError::from)??;
    let volumes = Arc::new(volumes);
    let metrics = Arc::new(Metrics::new());
    let metaservers = Metaservers::connect(config.id, &config.metaservers, metrics.clone())?;
    if config.metaservers.is_empty() {
        tracing::warn!("no metaservers configured: serving data, reporting to nobody");
    }

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = Worker::new(volumes.clone(), metrics.clone(), config.rack.clone());
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
        stopped.clone(),
    );

    tasks.extend(crate::scanner::spawn(
        config.scan_policy(),
        volumes.clone(),
        metaservers.clone(),
        metrics.clone(),
        stopped.clone(),
    ));

    if let Some(listener) = metrics_listener {
        let (m, v) = (metrics.clone(), volumes.clone());
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let until = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = crate::metrics::serve(listener, m, v, until).await {
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
    });
    let storage = node.volumes.storage();
    tracing::info!(
        id = config.id, addr = %bound, %advertise, rack = %config.rack,
        volumes = storage.volumes, failed_volumes = storage.failed_volumes,
        "blockserver listening"
    );
    let result = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(
            BlockDataServer::new(BlockDataService::new(node))
                .max_decoding_message_size(MAX_DATA_MESSAGE)
                .max_encoding_message_size(MAX_DATA_MESSAGE),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    let _ = stop.send(true);
    for task in tasks {
        if tokio::time::timeout(TASK_GRACE, task).await.is_err() {
            tracing::warn!("a heartbeat task did not stop in time");
        }
    }
    result.map_err(ServerError::from)
}

/// `listener` registered with the running tokio reactor.
fn tokio_listener(listener: std::net::TcpListener) -> std::io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Installs the log subscriber servers use (`RUST_LOG`, default `info`); colours only on a
/// terminal, so that log files (`metactl local up` writes one per server) stay plain text.
pub fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
