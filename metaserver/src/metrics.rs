//! Prometheus metrics of the metaserver (`/metrics` on `--metrics-addr`), named
//! `raftfs_meta_<what>_<unit>`: RPC counts and latencies per method, the Raft position of
//! this node (term, last log index, applied index, leader), and how far its state machine
//! trails the active (`observer_apply_lag_entries`, `observer_apply_lag_seconds`: on an
//! observer these are the observer lag; on a voter they measure the same thing), and how long
//! each step of the journal takes ([`JournalTimings`]).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::node::MetaNode;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// How long each step of an entry's way through the journal takes, so that an operator (and
/// `bench/meta-vs-etcd.sh`) can see where a write's latency goes without a profiler: on the
/// active an entry is appended and fsynced here (`log_append`), then sent to the followers
/// (`append_entries`, a round trip that includes their append and fsync), then applied
/// (`apply`, here and on every member); `entry` is the whole of it as the proposer sees it.
/// etcd answers the same question with `disk_wal_fsync_duration_seconds`,
/// `network_peer_round_trip_time_seconds` and `disk_backend_commit_duration_seconds`.
#[derive(Debug, Clone)]
pub struct JournalTimings {
    /// One append of entries to the log: the RocksDB write and its fsync.
    pub log_append: Histogram,
    /// One AppendEntries round trip to a follower, for those that carry entries.
    pub append_entries: Histogram,
    /// One apply call of the state machine, including the hand-off to a blocking thread.
    pub apply: Histogram,
    /// On the active: an entry from its proposal to its result (appended, replicated,
    /// committed and applied).
    pub entry: Histogram,
}

impl JournalTimings {
    /// The four histograms, registered in `registry`.
    fn registered(registry: &mut Registry) -> Self {
        let mut histogram = |name: &str, help: &str| {
            // 50 µs .. ~1.6 s
            let h = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
            registry.register(name, help, h.clone());
            h
        };
        Self {
            log_append: histogram(
                "journal_log_append_seconds",
                "One append to the Raft log: the RocksDB write and its fsync",
            ),
            append_entries: histogram(
                "journal_append_entries_seconds",
                "One AppendEntries round trip that carries entries, to a follower (its fsync included)",
            ),
            apply: histogram(
                "journal_apply_seconds",
                "One apply call of the state machine (one or more entries)",
            ),
            entry: histogram(
                "journal_entry_seconds",
                "On the active: an entry from its proposal to its applied result",
            ),
        }
    }
}

/// The metaserver's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rpcs: Family<RpcLabels, Counter>,
    rpc_seconds: Family<MethodLabels, Histogram>,
    term: Gauge,
    last_log_index: Gauge,
    applied_index: Gauge,
    is_leader: Gauge,
    snapshots_installed: Gauge,
    apply_lag_entries: Gauge,
    apply_lag_seconds: Histogram,
    proposals_per_entry: Histogram,
    journal: JournalTimings,
    corrupt_reports: Counter,
    reconstruction_queued: Family<PriorityLabels, Gauge>,
    reconstruction_unrecoverable: Gauge,
    reconstruction_in_flight: Gauge,
    workers: raftfs_runtime::WorkerMetrics,
    block_cache_bytes: Gauge,
    memtable_bytes: Gauge,
    groups: Family<CensusLabels, Gauge>,
    group_bytes: Family<PolicyLabels, Gauge>,
    budgets: Family<BudgetLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CensusLabels {
    policy: String,
    health: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

/// A journaled reconstruction budget: `kind` `rack` or `datacenter`, and the pair it is for
/// (a dashboard sets the blockservers' `reconstruction_read_bytes` by the same pair beside it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    kind: &'static str,
    from: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct PriorityLabels {
    priority: u8,
}

fn gauge_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("raftfs_meta");
        let rpcs = Family::<RpcLabels, Counter>::default();
        registry.register("rpc", "RPCs served, by method and outcome", rpcs.clone());
        let rpc_seconds = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
        });
        registry.register(
            "rpc_duration_seconds",
            "RPC latency, by method",
            rpc_seconds.clone(),
        );
        let term = Gauge::default();
        registry.register("raft_term", "Current Raft term", term.clone());
        let last_log_index = Gauge::default();
        registry.register(
            "raft_last_log_index",
            "Index of the newest log entry",
            last_log_index.clone(),
        );
        let applied_index = Gauge::default();
        registry.register(
            "raft_applied_index",
            "Index of the last applied entry (the state ID)",
            applied_index.clone(),
        );
        let is_leader = Gauge::default();
        registry.register("is_active", "1 on the active metaserver", is_leader.clone());
        let snapshots_installed = Gauge::default();
        registry.register(
            "snapshots_installed",
            "Snapshots installed since start",
            snapshots_installed.clone(),
        );
        let apply_lag_entries = Gauge::default();
        registry.register(
            "observer_apply_lag_entries",
            "Entries the active has spoken of that this member has not applied yet",
            apply_lag_entries.clone(),
        );
        let apply_lag_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 18));
        registry.register(
            "observer_apply_lag_seconds",
            "Time from the active fixing an entry (its timestamp) to this member applying it",
            apply_lag_seconds.clone(),
        );
        let proposals_per_entry = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "proposals_per_entry",
            "Client mutations packed into one Raft entry by the active (one fsync for them all)",
            proposals_per_entry.clone(),
        );
        let journal = JournalTimings::registered(&mut registry);
        let corrupt_reports = Counter::default();
        registry.register(
            "corrupt_block_reports",
            "Internal blocks reported corrupt by readers and blockservers",
            corrupt_reports.clone(),
        );
        let reconstruction_queued = Family::<PriorityLabels, Gauge>::default();
        registry.register(
            "reconstruction_queued_groups",
            "Block groups waiting for reconstruction on the active, by priority (0: one loss from data loss)",
            reconstruction_queued.clone(),
        );
        let reconstruction_unrecoverable = Gauge::default();
        registry.register(
            "reconstruction_unrecoverable_groups",
            "Block groups with fewer than k live internal blocks (no live replica)",
            reconstruction_unrecoverable.clone(),
        );
        let reconstruction_in_flight = Gauge::default();
        registry.register(
            "reconstruction_tasks_in_flight",
            "Reconstruction tasks handed out by the active and not yet reported done",
            reconstruction_in_flight.clone(),
        );
        let block_cache_bytes = Gauge::default();
        registry.register(
            "rocksdb_block_cache_bytes",
            "Bytes in the block cache shared by the log and the namespace (storage.block-cache-bytes bounds it)",
            block_cache_bytes.clone(),
        );
        let memtable_bytes = Gauge::default();
        registry.register(
            "rocksdb_memtable_bytes",
            "Bytes in memtables across the log and the namespace (storage.memtable-bytes bounds it)",
            memtable_bytes.clone(),
        );
        let groups = Family::<CensusLabels, Gauge>::default();
        registry.register(
            "block_groups",
            "Closed block groups by storage policy and health, as the active's last whole redundancy scan pass counted them",
            groups.clone(),
        );
        let group_bytes = Family::<PolicyLabels, Gauge>::default();
        registry.register(
            "block_group_bytes",
            "File bytes in closed block groups by storage policy (before copies or parity), as the last pass counted them",
            group_bytes.clone(),
        );
        let budgets = Family::<BudgetLabels, Gauge>::default();
        registry.register(
            "reconstruction_budget_bytes_per_second",
            "Journaled reconstruction budgets by rack pair or datacenter pair (0 when unset: the pair is unlimited)",
            budgets.clone(),
        );
        let workers = raftfs_runtime::WorkerMetrics::registered(&mut registry);
        Self {
            groups,
            group_bytes,
            budgets,
            block_cache_bytes,
            memtable_bytes,
            registry,
            workers,
            reconstruction_in_flight,
            reconstruction_queued,
            reconstruction_unrecoverable,
            corrupt_reports,
            proposals_per_entry,
            journal,
            apply_lag_entries,
            apply_lag_seconds,
            rpcs,
            rpc_seconds,
            term,
            last_log_index,
            applied_index,
            is_leader,
            snapshots_installed,
        }
    }

    /// Counts one RPC.
    pub fn observe_rpc(&self, method: &'static str, elapsed: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.rpcs
            .get_or_create(&RpcLabels { method, outcome })
            .inc();
        self.rpc_seconds
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// The active's reconstruction queues after a scan.
    pub fn set_reconstruction_queues(&self, queued: [u64; 3], unrecoverable: u64) {
        for (p, n) in (0u8..).zip(queued) {
            self.reconstruction_queued
                .get_or_create(&PriorityLabels { priority: p })
                .set(gauge_i64(n));
        }
        self.reconstruction_unrecoverable
            .set(gauge_i64(unrecoverable));
    }

    /// The last whole pass's census (a policy no longer found drops out at the next pass).
    pub fn set_census(&self, census: &crate::redundancy::Census) {
        self.groups.clear();
        self.group_bytes.clear();
        for (policy, c) in census {
            for (health, n) in [
                ("healthy", c.healthy),
                ("degraded", c.degraded),
                ("missing", c.missing),
                ("awaiting", c.awaiting),
                ("draining", c.draining),
            ] {
                self.groups
                    .get_or_create(&CensusLabels {
                        policy: policy.clone(),
                        health,
                    })
                    .set(gauge_i64(n));
            }
            self.group_bytes
                .get_or_create(&PolicyLabels {
                    policy: policy.clone(),
                })
                .set(gauge_i64(c.bytes));
        }
    }

    /// The journaled budgets, as the last scan read them.
    pub fn set_budgets(&self, throttle: &crate::namespace::throttle::ThrottleSettings) {
        self.budgets.clear();
        let pairs = throttle
            .rack_pairs
            .iter()
            .map(|p| ("rack", p))
            .chain(throttle.datacenter_pairs.iter().map(|p| ("datacenter", p)));
        for (kind, ((from, to), bps)) in pairs {
            self.budgets
                .get_or_create(&BudgetLabels {
                    kind,
                    from: from.clone(),
                    to: to.clone(),
                })
                .set(gauge_i64(*bps));
        }
    }

    /// Tasks in flight on the active.
    pub fn set_reconstruction_in_flight(&self, n: u64) {
        self.reconstruction_in_flight.set(gauge_i64(n));
    }

    /// Corruption reports received.
    pub fn corrupt_reports(&self) -> &Counter {
        &self.corrupt_reports
    }

    /// The group-commit histogram, which the proposer fills.
    pub fn proposals_per_entry(&self) -> Histogram {
        self.proposals_per_entry.clone()
    }

    /// The journal's step timings, which the log store, the Raft transport, the state machine
    /// and the proposer fill.
    pub fn journal_timings(&self) -> JournalTimings {
        self.journal.clone()
    }

    /// The apply-lag histogram, which the state machine fills as it applies entries.
    pub fn apply_lag_seconds(&self) -> Histogram {
        self.apply_lag_seconds.clone()
    }

    /// Refreshes the Raft gauges from the current metrics.
    pub fn refresh(&self, node: &MetaNode) {
        let (raft, sm) = (&node.raft, &node.sm);
        let applied = sm.applied_index();
        let m = raft.metrics();
        let m = m.borrow();
        let newest = node
            .leader_position
            .get()
            .max(m.last_log_index.unwrap_or(0));
        self.apply_lag_entries
            .set(gauge_i64(newest.saturating_sub(applied)));
        self.term.set(gauge_i64(m.current_term));
        self.last_log_index
            .set(gauge_i64(m.last_log_index.unwrap_or(0)));
        self.applied_index.set(gauge_i64(applied));
        self.is_leader.set(i64::from(
            m.current_leader == Some(m.id) && m.state == openraft::ServerState::Leader,
        ));
        self.snapshots_installed
            .set(gauge_i64(sm.snapshots_installed()));
        self.workers.refresh(&node.workers);
        let memory = sm.memory();
        self.block_cache_bytes
            .set(gauge_i64(memory.block_cache_usage() as u64));
        self.memtable_bytes
            .set(gauge_i64(memory.memtable_usage() as u64));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        raftfs_runtime::metrics::encode(&self.registry)
    }
}

/// Serves `/metrics`, and the operator pages `ui`, until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    node: MetaNode,
    ui: axum::Router,
) -> std::io::Result<()> {
    let render = move || {
        let (metrics, node) = (metrics.clone(), node.clone());
        async move {
            metrics.refresh(&node);
            metrics.encode()
        }
    };
    raftfs_runtime::metrics::serve(listener, render, ui, std::future::pending()).await
}
