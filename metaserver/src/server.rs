//! Starting a metaserver: stores, Raft, proposer, gRPC services and metrics, wired together;
//! and stopping it cleanly on a signal.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, SnapshotPolicy};
use raftfs_proto::admin_server::AdminServer;
use raftfs_proto::block_servers_server::BlockServersServer;
use raftfs_proto::namespace_server::NamespaceServer;
use raftfs_proto::raft_server::RaftServer;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;
use crate::journal::Raft;
use crate::journal::log_store::LogStore;
use crate::journal::network::{Dialer, NetworkFactory};
use crate::journal::proposer::{Proposer, ProposerConfig};
use crate::journal::state_machine::StateMachine;
use crate::metrics::Metrics;
use crate::observer::LeaderPosition;
use crate::redundancy::scheduler::{Scheduler, SchedulerConfig};
use crate::registry::Registry;
use crate::service::MetaNode;
use crate::service::admin::AdminService;
use crate::service::blockservers::BlockServersService;
use crate::service::namespace::NamespaceService;
use crate::service::raft::RaftService;

/// Largest gRPC message between metaservers (AppendEntries batches, snapshot chunks).
pub const MAX_RAFT_MESSAGE: usize = 256 * 1024 * 1024;

/// Snapshot bytes per InstallSnapshot message.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;

/// Why a metaserver could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("opening storage: {0}")]
    Storage(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The sockets a metaserver serves on, bound before it starts. Whoever starts the server may
/// bind them itself and hand them down (as systemd's socket activation, or `metactl local`,
/// does): then the ports are held from the moment they are chosen, and no other process can
/// take them before the server listens.
#[derive(Debug)]
pub struct Listeners {
    /// Raft and client RPCs, at `config.listen_addr`.
    pub rpc: std::net::TcpListener,
    /// `/metrics`, at `config.metrics_addr` (none when that is unset).
    pub metrics: Option<std::net::TcpListener>,
}

impl Listeners {
    /// Binds the addresses `config` names.
    pub fn bind(config: &Config) -> std::io::Result<Self> {
        Ok(Self {
            rpc: std::net::TcpListener::bind(config.listen_addr)?,
            metrics: config
                .metrics_addr
                .map(std::net::TcpListener::bind)
                .transpose()?,
        })
    }
}

/// Runs a metaserver on the addresses `config` names until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let listeners = Listeners::bind(&config)?;
    serve(config, listeners, shutdown).await
}

/// Runs a metaserver on already bound `listeners` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let listener = tokio_listener(listeners.rpc)?;
    let metrics_listener = listeners.metrics.map(tokio_listener).transpose()?;
    std::fs::create_dir_all(&config.data_dir)?;
    let sm =
        StateMachine::open(&config.data_dir).map_err(|e| ServerError::Storage(e.to_string()))?;
    let sm_shared = sm.shared();
    let metrics = Arc::new(Metrics::new());
    let timings = metrics.journal_timings();
    sm_shared.set_metrics(metrics.apply_lag_seconds(), timings.apply.clone());
    let mut log_store = LogStore::open(&config.data_dir.join("log"))
        .map_err(|e| ServerError::Storage(e.to_string()))?
        .timed(timings.log_append.clone());
    if config.debug_ack_before_fsync {
        tracing::warn!("debug-ack-before-fsync: this node acknowledges log entries it may lose");
        log_store = log_store.acking_before_fsync();
        sm_shared.make_volatile_for_debug();
    }

    let r = &config.raft;
    let raft_config = openraft::Config {
        cluster_name: "raftfs".into(),
        heartbeat_interval: r.heartbeat_ms,
        election_timeout_min: r.election_timeout_min_ms,
        election_timeout_max: r.election_timeout_max_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(r.snapshot_every_entries),
        max_in_snapshot_log_to_keep: r.keep_entries_behind_snapshot,
        max_payload_entries: r.max_entries_per_append,
        // openraft's 200 ms default cancels a multi-MiB chunk on a busy machine; a cancelled
        // transfer starves the follower of heartbeats and it starts elections it cannot win.
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        install_snapshot_timeout: r.snapshot_chunk_timeout_ms,
        ..Default::default()
    }
    .validate()
    .map_err(|e| ServerError::Raft(e.to_string()))?;
    let dialer = Dialer {
        source_ip: config.source_ip,
    };
    let raft = Raft::new(
        config.node_id,
        Arc::new(raft_config),
        NetworkFactory::new(dialer).timed(timings.append_entries.clone()),
        log_store,
        sm,
    )
    .await
    .map_err(|e| ServerError::Raft(e.to_string()))?;

    let proposer = Proposer::spawn(
        raft.clone(),
        ProposerConfig {
            max_batch: config.proposer.max_batch,
            max_in_flight: config.proposer.max_in_flight,
            lease: config.lease(),
        },
        metrics.proposals_per_entry(),
        timings.entry,
    );
    let node = MetaNode {
        id: config.node_id,
        advertise_addr: config.advertised(),
        raft: raft.clone(),
        sm: sm_shared.clone(),
        proposer,
        metrics: metrics.clone(),
        quorum_lease: Duration::from_millis(
            config
                .raft
                .election_timeout_min_ms
                .saturating_sub(config.raft.heartbeat_ms),
        ),
        write_quorum_timeout: Duration::from_millis(config.raft.election_timeout_max_ms),
        read_wait: config.read_wait(),
        skip_state_id_wait: config.debug_skip_state_id_wait,
        leader_position: Arc::new(LeaderPosition::default()),
        dialer,
        registry: Arc::new(Registry::new(Duration::from_secs(
            config.blocks.dead_after_secs,
        ))),
        blocks: config.blocks.clone(),
        scheduler: Arc::new(Scheduler::new(SchedulerConfig {
            max_streams: config.blocks.max_streams,
            xmits_weight: config.blocks.xmits_weight,
            task_timeout: Duration::from_secs(config.blocks.reconstruction_timeout_secs),
            rack_aware: config.blocks.rack_aware_reconstruction,
        })),
    };
    tokio::spawn(crate::redundancy::monitor(
        node.clone(),
        Duration::from_millis(config.blocks.redundancy_scan_ms),
    ));
    tokio::spawn(crate::redundancy::sweep_garbage(
        node.clone(),
        Duration::from_secs(3),
    ));
    tokio::spawn(crate::lease_recovery::monitor(
        node.clone(),
        Duration::from_millis(config.blocks.lease_check_ms),
    ));
    if node.skip_state_id_wait {
        tracing::warn!("debug-skip-state-id-wait: this observer may serve stale reads");
    }

    if config.bootstrap {
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ServerError::Raft(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<u64, BasicNode> = config
                .initial_members
                .iter()
                .map(|p| {
                    (
                        p.id,
                        BasicNode {
                            addr: p.addr.clone(),
                        },
                    )
                })
                .collect();
            // Every initial voter does this with the same members; whichever vote wins, the
            // others' attempts are harmless (openraft refuses a second initialization).
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "cluster already initialized");
            }
        }
    }

    if let Some(listener) = metrics_listener {
        let (m, n) = (metrics.clone(), node.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(listener, m, n).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }

    tracing::info!(node = config.node_id, addr = %listener.local_addr()?, "metaserver listening");
    let result = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(NamespaceServer::new(NamespaceService::new(node.clone())))
        .add_service(AdminServer::new(AdminService::new(node.clone())))
        .add_service(BlockServersServer::new(BlockServersService::new(
            node.clone(),
        )))
        .add_service(
            RaftServer::new(RaftService::new(node))
                .max_decoding_message_size(MAX_RAFT_MESSAGE)
                .max_encoding_message_size(MAX_RAFT_MESSAGE),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    result.map_err(ServerError::from)
}

/// `listener` registered with the running tokio reactor.
fn tokio_listener(listener: std::net::TcpListener) -> std::io::Result<tokio::net::TcpListener> {
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
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

/// Installs the log subscriber servers use (`RUST_LOG`, default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
