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
use raftfs_runtime::Workers;

use crate::config::Config;
use crate::journal::log_store::LogStore;
use crate::journal::network::{Dialer, GrpcTransport, NetworkFactory, RaftTransport};
use crate::journal::proposer::{Proposer, ProposerConfig};
use crate::journal::state_machine::StateMachine;
use crate::journal::{MemberId, Raft};
use crate::metrics::Metrics;
use crate::node::{BlockState, MetaNode, ServingRules};
use crate::observer::LeaderPosition;
use crate::service::admin::AdminService;
use crate::service::blockservers::BlockServersService;
use crate::service::namespace::NamespaceService;
use crate::service::raft::RaftService;

pub use raftfs_runtime::{Listeners, signal};

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
    #[error(transparent)]
    Serve(#[from] raftfs_runtime::ServeError),
    #[error("tls: {0}")]
    Tls(#[from] raftfs_runtime::TlsError),
}

/// How often the active looks for blocks of deleted groups that servers reported earlier.
const GARBAGE_SWEEP_PERIOD: Duration = Duration::from_secs(3);

/// How often the active checks whether a new block key is due: a new active makes the
/// cluster's first key within this of its election.
const BLOCK_KEY_CHECK_PERIOD: Duration = Duration::from_millis(500);

/// How long a stopping server waits for each background worker.
const WORKER_GRACE: Duration = Duration::from_secs(5);

/// How long a stopping member waits for its stores to be closed.
const STORE_CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Threads for long reads, and how many such reads may wait for them: two threads leave
/// the machine's other cores to the journal and short reads; past the queue a long read is
/// answered `Unavailable` (busy) at once.
const LONG_READ_THREADS: usize = 2;
const LONG_READ_QUEUE: usize = 64;

/// Binds the addresses `config` names: every port, the advertised one first, and metrics.
pub fn listeners(config: &Config) -> std::io::Result<Listeners> {
    Listeners::bind(&rpc_addrs(config), config.metrics_addr)
}

/// The addresses of every gRPC port, in the order their listeners are bound or handed down.
pub fn rpc_addrs(config: &Config) -> Vec<std::net::SocketAddr> {
    let ports = config.security.ports(config.listen_addr);
    ports.iter().map(|p| p.addr).collect()
}

/// One metaserver's running parts without its gRPC ports: its node (the context every
/// service shares), its Raft and its background workers. [`serve`] puts the ports in front of
/// one; the in-process cluster (`raftfs-sim`) runs several over its own transport.
#[derive(Debug)]
pub struct Member {
    node: MetaNode,
    workers: Workers,
    /// The log's RocksDB, to see it closed on [`Member::stop`] (Raft owns the store).
    log_db: std::sync::Weak<rocksdb::DB>,
}

impl Member {
    /// Opens the stores in `config.data_dir`, starts Raft over `transport`, the proposer and
    /// the workers, and initializes the cluster if `config.bootstrap` asks for it.
    pub async fn start<T: RaftTransport>(
        config: &Config,
        transport: T,
    ) -> Result<Self, ServerError> {
        config.validate()?;
        let tls = config.security.material()?;
        Self::start_with(config, transport, tls.as_ref()).await
    }

    /// [`Member::start`] with `config` validated and its TLS material loaded already.
    async fn start_with<T: RaftTransport>(
        config: &Config,
        transport: T,
        tls: Option<&raftfs_runtime::TlsMaterial>,
    ) -> Result<Self, ServerError> {
        // What can fail is done before Raft starts: a Raft left running would hold the
        // stores' locks, and the next start on this directory would fail.
        let umask = config.permissions.umask()?;
        let long_reads =
            raftfs_runtime::ReadPool::new("long-reads", LONG_READ_THREADS, LONG_READ_QUEUE)?;
        std::fs::create_dir_all(&config.data_dir)?;
        let memory = config.storage.memory();
        let sm = StateMachine::open(&config.data_dir, memory.clone())
            .map_err(|e| ServerError::Storage(e.to_string()))?;
        let sm_shared = sm.shared();
        let metrics = Arc::new(Metrics::new());
        let timings = metrics.journal_timings();
        sm_shared.set_metrics(metrics.apply_lag_seconds(), timings.apply.clone());
        let mut log_store = LogStore::open(&config.data_dir.join("log"), &memory)
            .map_err(|e| ServerError::Storage(e.to_string()))?
            .timed(timings.log_append.clone());
        if config.debug_ack_before_fsync {
            tracing::warn!(
                "debug-ack-before-fsync: this node acknowledges log entries it may lose"
            );
            log_store = log_store.acking_before_fsync();
            sm_shared.make_volatile_for_debug();
        }
        if config.debug_reads_without_lease {
            tracing::warn!("debug-reads-without-lease: this node may serve stale reads");
        }
        let log_db = log_store.closed_when_gone();
        let committed = log_store.committed();
        let r = &config.raft;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config(config)?),
            NetworkFactory::over(transport, r.max_append_bytes)
                .timed(timings.append_entries.clone()),
            log_store,
            sm,
        )
        .await
        .map_err(|e| ServerError::Raft(e.to_string()))?;
        let proposer = Proposer::spawn(
            raft.clone(),
            ProposerConfig {
                max_batch: config.proposer.max_batch,
                max_batch_bytes: config.proposer.max_batch_bytes,
                max_in_flight: config.proposer.max_in_flight,
                lease: config.lease(),
            },
            metrics.proposals_per_entry(),
            timings.entry,
        );
        let mut workers = Workers::new();
        let node = MetaNode {
            id: config.node_id,
            advertise_addr: config.advertised(),
            raft: raft.clone(),
            sm: sm_shared.clone(),
            proposer,
            metrics: metrics.clone(),
            rules: serving_rules(config),
            leader_position: Arc::new(LeaderPosition::default()),
            dialer: Dialer {
                source_ip: config.source_ip,
                wire: raftfs_runtime::Dialer::new(tls),
            },
            authorizer: config.permissions.authorizer(tls.is_none()),
            umask,
            tokens: config.block_tokens.clone(),
            nameservice: config.nameservice.clone(),
            key_cache: Arc::default(),
            blocks: BlockState::new(config.blocks.clone()),
            committed,
            term_floor: Arc::default(),
            workers: workers.statuses(),
            long_reads,
        };
        spawn_workers(&mut workers, &node, config);
        if node.rules.skip_state_id_wait {
            tracing::warn!("debug-skip-state-id-wait: this observer may serve stale reads");
        }
        let member = Member {
            node,
            workers,
            log_db,
        };
        if config.bootstrap
            && let Err(e) = bootstrap(&raft, config).await
        {
            member.stop().await;
            return Err(e);
        }
        Ok(member)
    }

    /// The context every service of this member shares.
    pub fn node(&self) -> &MetaNode {
        &self.node
    }

    /// Stops the workers, then Raft (a clean stop: what is in the log stays there).
    pub async fn stop(self) {
        let Member { node, workers, .. } = self;
        Self::stop_parts(&node, workers).await;
    }

    async fn stop_parts(node: &MetaNode, workers: Workers) {
        workers.stop(WORKER_GRACE).await;
        if let Err(e) = node.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    /// [`Member::stop`], then waits, up to [`STORE_CLOSE_GRACE`], for tasks that still hold
    /// a store (Raft's state machine worker, a blocking write finishing) to let go of it, and
    /// closes it, so that a member can be started again on this directory in the same process
    /// (RocksDB locks a directory per process). The caller must have dropped its own clones of
    /// the node ([`Member::node`]); a server process, which exits after the stop, has no need.
    pub async fn stop_and_close(self) {
        let Member {
            node,
            workers,
            log_db,
        } = self;
        Self::stop_parts(&node, workers).await;
        let deadline = tokio::time::Instant::now() + STORE_CLOSE_GRACE;
        let sm_db = node.sm.db();
        drop(node);
        close_when_released("state machine", sm_db, deadline).await;
        if let Some(log_db) = log_db.upgrade() {
            close_when_released("log", log_db, deadline).await;
        }
    }
}

/// Waits, until `deadline`, to hold the last reference to `db`, then closes it here. That
/// the other references are gone does not mean the store is closed: whoever drops the last
/// one closes it, and a RocksDB close waits for the flushes and compactions under way (many
/// seconds on a busy machine after large writes), holding the directory's lock until it
/// returns. Found when a stopped member's directory, opened again, was still locked.
async fn close_when_released(
    store: &'static str,
    mut db: Arc<rocksdb::DB>,
    deadline: tokio::time::Instant,
) {
    loop {
        // Atomic: no other holder can clone it (or upgrade a weak reference) in between.
        match Arc::try_unwrap(db) {
            Ok(db) => {
                if let Err(e) = raftfs_runtime::simulation::blocking(move || drop(db)).await {
                    tracing::warn!(store, error = %e, "closing a store");
                }
                return;
            }
            Err(shared) => db = shared,
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(store, "a store is still open after the member stopped");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// openraft's configuration from ours.
fn raft_config(config: &Config) -> Result<openraft::Config, ServerError> {
    let r = &config.raft;
    openraft::Config {
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
    .map_err(|e| ServerError::Raft(e.to_string()))
}

/// Initializes the cluster with the configured initial members, unless it already is.
async fn bootstrap(raft: &Raft, config: &Config) -> Result<(), ServerError> {
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| ServerError::Raft(e.to_string()))?;
    if initialized {
        return Ok(());
    }
    let members: BTreeMap<MemberId, BasicNode> = config
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
    Ok(())
}

/// Runs a metaserver on already bound `listeners` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let tls = config.security.material()?;
    let (rpc_listeners, metrics_listener) = listeners.into_tokio()?;
    let ports = config.security.ports(config.listen_addr);
    if rpc_listeners.len() != ports.len() {
        return Err(ServerError::Io(std::io::Error::other(format!(
            "{} listeners for {} configured ports",
            rpc_listeners.len(),
            ports.len()
        ))));
    }
    let transport = GrpcTransport::new(Dialer {
        source_ip: config.source_ip,
        wire: raftfs_runtime::Dialer::new(tls.as_ref()),
    });
    let member = Member::start_with(&config, transport, tls.as_ref()).await?;
    let node = member.node.clone();
    if let Some(listener) = metrics_listener {
        let (m, n) = (node.metrics.clone(), node.clone());
        // File names only where any caller may already claim the superuser's name.
        let ui = crate::ui::routes(node.clone(), tls.is_none());
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(listener, m, n, ui).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }

    for (l, p) in rpc_listeners.iter().zip(&ports) {
        tracing::info!(
            node = %config.node_id, addr = %l.local_addr()?, policy = %p.policy, simple = p.simple,
            "metaserver listening"
        );
    }
    let stopping = node.clone();
    let routes =
        tonic::service::Routes::new(NamespaceServer::new(NamespaceService::new(node.clone())))
            .add_service(AdminServer::new(AdminService::new(node.clone())))
            .add_service(BlockServersServer::new(BlockServersService::new(
                node.clone(),
            )))
            .add_service(
                RaftServer::new(RaftService::new(node.clone()))
                    .max_decoding_message_size(MAX_RAFT_MESSAGE)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE),
            );
    let ports = rpc_listeners.into_iter().zip(ports).collect();
    // A planned stop (SIGTERM) first hands the leadership over, still serving, so that the
    // callers' next attempts are redirected to the new active; SIGINT stops at once.
    let shutdown = async move {
        shutdown.await;
        if raftfs_runtime::terminated() {
            crate::membership::hand_off(&stopping).await;
        }
    };
    let result = raftfs_runtime::serve_ports(
        routes,
        ports,
        tls.as_ref(),
        &config.security.proxy_users,
        shutdown,
    )
    .await;
    member.stop().await;
    tracing::info!(node = %config.node_id, "metaserver stopped");
    result.map_err(ServerError::from)
}

/// When this member may answer reads and take writes, from its Raft timing.
fn serving_rules(config: &Config) -> ServingRules {
    let raft = &config.raft;
    ServingRules {
        quorum_lease: Duration::from_millis(
            raft.election_timeout_min_ms
                .saturating_sub(raft.heartbeat_ms),
        ),
        write_quorum_timeout: Duration::from_millis(raft.election_timeout_max_ms),
        read_wait: config.read_wait(),
        skip_state_id_wait: config.debug_skip_state_id_wait,
        skip_read_lease: config.debug_reads_without_lease,
    }
}

/// The active's periodic jobs, each a named worker (they skip their rounds on other members).
fn spawn_workers(workers: &mut Workers, node: &MetaNode, config: &Config) {
    let n = node.clone();
    let pass = crate::redundancy::SharedPass::default();
    let groups = config.blocks.redundancy_scan_groups;
    workers.spawn_periodic(
        "redundancy-scan",
        Duration::from_millis(config.blocks.redundancy_scan_ms),
        move || {
            let (n, pass) = (n.clone(), pass.clone());
            async move { crate::redundancy::scan_round(&n, &pass, groups).await }
        },
    );
    let n = node.clone();
    workers.spawn_periodic("garbage-sweep", GARBAGE_SWEEP_PERIOD, move || {
        let n = n.clone();
        async move { crate::redundancy::sweep_round(&n).await }
    });
    let n = node.clone();
    workers.spawn_periodic(
        "lease-recovery",
        Duration::from_millis(config.blocks.lease_check_ms),
        move || {
            let n = n.clone();
            async move { crate::lease_recovery::recovery_round(&n).await }
        },
    );
    let n = node.clone();
    let tokens = config.block_tokens.clone();
    workers.spawn_periodic("block-keys", BLOCK_KEY_CHECK_PERIOD, move || {
        let (n, tokens) = (n.clone(), tokens.clone());
        async move { crate::block_tokens::roll_round(&n, &tokens).await }
    });
    let n = node.clone();
    let budget = config.namespace.reclaim_budget;
    workers.spawn_periodic(
        "reclaim",
        Duration::from_millis(config.namespace.reclaim_check_ms),
        move || {
            let n = n.clone();
            async move { crate::reclaim::reclaim_round(&n, budget).await }
        },
    );
}

/// Installs the log subscriber (`RUST_LOG`, default `info`; openraft's own chatter at `warn`).
pub fn init_tracing() {
    raftfs_runtime::init_tracing("info,openraft=warn");
}
