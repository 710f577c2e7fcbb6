//! Prometheus metrics of the blockserver (`/metrics` on `metrics-addr`), named
//! `raftfs_block_<what>_<unit>`: data RPCs by method and outcome with their latency, bytes
//! written and read, corrupt blocks found, the RPCs to the metaservers (registrations,
//! heartbeats, reports) by outcome, and the storage figures the heartbeats carry.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::volumes::{Storage, Volumes};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// The blockserver's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rpcs: Family<RpcLabels, Counter>,
    rpc_seconds: Family<MethodLabels, Histogram>,
    written_bytes: Counter,
    read_bytes: Counter,
    corrupt_reads: Counter,
    meta_rpcs: Family<RpcLabels, Counter>,
    capacity: Gauge,
    used: Gauge,
    available: Gauge,
    volumes: Gauge,
    failed_volumes: Gauge,
    xmits_in_progress: Gauge,
    reconstruction_tasks: Family<OutcomeLabels, Counter>,
    reconstruction_read: Family<RackLabels, Counter>,
    /// The same bytes by source rack, which every heartbeat carries (the metric family
    /// cannot be listed).
    rebuild_reads: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    reconstruction_written: Counter,
    scanned_bytes: Counter,
    scan_corrupt: Counter,
    scan_passes: Counter,
    token_refusals: Family<RefusalLabels, Counter>,
    fenced_orders: Family<OrderLabels, Counter>,
    block_keys: Gauge,
    idle_writes: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    method: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrderLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RackLabels {
    from_rack: String,
    /// This server's rack: with `from_rack`, the rack pair a budget is set for.
    to_rack: String,
}

fn gauge_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("raftfs_block");
        let rpcs = Family::<RpcLabels, Counter>::default();
        registry.register(
            "rpc",
            "Data RPCs served, by method and outcome",
            rpcs.clone(),
        );
        let rpc_seconds = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 2.0, 20))
        });
        registry.register(
            "rpc_duration_seconds",
            "Data RPC latency (a stream: until its last message), by method",
            rpc_seconds.clone(),
        );
        let written_bytes = Counter::default();
        registry.register_with_unit(
            "written",
            "Block bytes received and written",
            prometheus_client::registry::Unit::Bytes,
            written_bytes.clone(),
        );
        let read_bytes = Counter::default();
        registry.register_with_unit(
            "read",
            "Block bytes read, verified and sent",
            prometheus_client::registry::Unit::Bytes,
            read_bytes.clone(),
        );
        let corrupt_reads = Counter::default();
        registry.register(
            "corrupt_reads",
            "Reads that found a block's bytes not matching their checksums",
            corrupt_reads.clone(),
        );
        let meta_rpcs = Family::<RpcLabels, Counter>::default();
        registry.register(
            "metaserver_rpc",
            "RPCs to metaservers (register, heartbeat, full_report, incremental_report, \
             report_corrupt), by outcome",
            meta_rpcs.clone(),
        );
        let token_refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "token_refusals",
            "Data calls refused for their block access token, by method and reason (DESIGN §9)",
            token_refusals.clone(),
        );
        let fenced_orders = Family::<OrderLabels, Counter>::default();
        registry.register(
            "fenced_orders",
            "Deletions, tasks and cancellations ignored because the metaserver that sent them \
             was not the active of the highest term seen, by kind",
            fenced_orders.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let capacity = gauge(
            &mut registry,
            "capacity_bytes",
            "Size of the working volumes' file systems",
        );
        let used = gauge(&mut registry, "used_bytes", "Bytes of block data stored");
        let available = gauge(
            &mut registry,
            "available_bytes",
            "Free space above the reserve on the working volumes",
        );
        let volumes = gauge(&mut registry, "volumes", "Volumes configured");
        let failed_volumes = gauge(&mut registry, "failed_volumes", "Volumes out of use");
        let xmits_in_progress = gauge(
            &mut registry,
            "xmits_in_progress",
            "Reconstruction transfers in progress (weighted)",
        );
        let reconstruction_tasks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reconstruction_tasks",
            "Reconstruction tasks started, finished and failed here",
            reconstruction_tasks.clone(),
        );
        let reconstruction_read = Family::<RackLabels, Counter>::default();
        registry.register(
            "reconstruction_read_bytes",
            "Bytes read from sources by reconstruction here, by the source's rack and this server's",
            reconstruction_read.clone(),
        );
        let reconstruction_written = Counter::default();
        registry.register(
            "reconstruction_written_bytes",
            "Bytes of rebuilt internal blocks written here",
            reconstruction_written.clone(),
        );
        let scanned_bytes = Counter::default();
        registry.register_with_unit(
            "scanned",
            "Block bytes read back and verified by the block scanner",
            prometheus_client::registry::Unit::Bytes,
            scanned_bytes.clone(),
        );
        let scan_corrupt = Counter::default();
        registry.register(
            "scan_corrupt",
            "Corrupt blocks the block scanner found (and reported)",
            scan_corrupt.clone(),
        );
        let scan_passes = Counter::default();
        registry.register(
            "scan_passes",
            "Passes of the block scanner over every stored block",
            scan_passes.clone(),
        );
        let idle_writes = Counter::default();
        registry.register(
            "idle_writes_ended",
            "Write streams ended because their writer sent nothing for write-idle-secs",
            idle_writes.clone(),
        );
        let block_keys = gauge(
            &mut registry,
            "block_keys",
            "Block keys this server knows (learnt from heartbeat replies)",
        );
        // Every reason shows from the start, at 0: a dashboard tells "none" from "unknown".
        for method in [
            "write_block",
            "read_block",
            "block_info",
            "block_checksums",
            "partial",
            "recover_block",
        ] {
            for reason in raftfs_core::block_token::TokenError::REASONS {
                let _ = token_refusals.get_or_create(&RefusalLabels { method, reason });
            }
        }
        Self {
            registry,
            token_refusals,
            fenced_orders,
            block_keys,
            idle_writes,
            scanned_bytes,
            scan_corrupt,
            scan_passes,
            reconstruction_tasks,
            reconstruction_read,
            rebuild_reads: Default::default(),
            reconstruction_written,
            rpcs,
            rpc_seconds,
            written_bytes,
            read_bytes,
            corrupt_reads,
            meta_rpcs,
            capacity,
            used,
            available,
            volumes,
            failed_volumes,
            xmits_in_progress,
        }
    }

    /// Counts one data RPC.
    pub fn observe_rpc(&self, method: &'static str, elapsed: Duration, ok: bool) {
        self.rpcs
            .get_or_create(&RpcLabels {
                method,
                outcome: outcome(ok),
            })
            .inc();
        self.rpc_seconds
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts bytes written to a block.
    pub fn written(&self, bytes: u64) {
        self.written_bytes.inc_by(bytes);
    }

    /// Counts bytes read from a block and sent.
    pub fn read(&self, bytes: u64) {
        self.read_bytes.inc_by(bytes);
    }

    /// Counts a read that found a corrupt block.
    pub fn corrupt_read(&self) {
        self.corrupt_reads.inc();
    }

    /// Counts one RPC to a metaserver.
    pub fn observe_meta_rpc(&self, method: &'static str, ok: bool) {
        self.meta_rpcs
            .get_or_create(&RpcLabels {
                method,
                outcome: outcome(ok),
            })
            .inc();
    }

    /// Sets the storage gauges.
    /// A data call `method` refused for its token, for `reason`.
    pub fn token_refused(&self, method: &'static str, reason: &'static str) {
        self.token_refusals
            .get_or_create(&RefusalLabels { method, reason })
            .inc();
    }

    /// `n` orders of `kind` (`delete`, `task`, `cancel`) ignored from a deposed active.
    pub fn fenced(&self, kind: &'static str, n: usize) {
        self.fenced_orders
            .get_or_create(&OrderLabels { kind })
            .inc_by(n as u64);
    }

    /// Counts a write stream ended for being idle.
    pub fn idle_write_ended(&self) {
        self.idle_writes.inc();
    }

    /// How many block keys this server knows.
    pub fn set_block_keys(&self, n: usize) {
        self.block_keys.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A reconstruction task `started`, `finished` or `failed`.
    pub fn reconstruction_task(&self, outcome: &'static str) {
        self.reconstruction_tasks
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// `bytes` read for reconstruction from a source in `from_rack` by this server, in
    /// `to_rack`.
    pub fn reconstruction_read(&self, from_rack: &str, to_rack: &str, bytes: u64) {
        self.reconstruction_read
            .get_or_create(&RackLabels {
                from_rack: from_rack.to_owned(),
                to_rack: to_rack.to_owned(),
            })
            .inc_by(bytes);
        let mut reads = self.rebuild_reads.lock().unwrap_or_else(|p| p.into_inner());
        match reads.get_mut(from_rack) {
            Some(total) => *total = total.saturating_add(bytes),
            None => {
                reads.insert(from_rack.to_owned(), bytes);
            }
        }
    }

    /// Bytes read for reconstruction since this server started, by the source's rack.
    pub fn rebuild_reads(&self) -> Vec<(String, u64)> {
        let reads = self.rebuild_reads.lock().unwrap_or_else(|p| p.into_inner());
        reads.iter().map(|(r, b)| (r.clone(), *b)).collect()
    }

    /// `bytes` verified by the block scanner.
    pub fn scanned(&self, bytes: u64) {
        self.scanned_bytes.inc_by(bytes);
    }

    /// A corrupt block found by the block scanner.
    pub fn scan_corrupt(&self) {
        self.scan_corrupt.inc();
    }

    /// A pass of the block scanner finished.
    pub fn scan_pass(&self) {
        self.scan_passes.inc();
    }

    /// A rebuilt block of `bytes` finalized here.
    pub fn reconstruction_written(&self, bytes: u64) {
        self.reconstruction_written.inc_by(bytes);
    }

    pub fn set_storage(&self, s: &Storage, xmits_in_progress: u32) {
        self.capacity.set(gauge_i64(s.capacity));
        self.used.set(gauge_i64(s.used));
        self.available.set(gauge_i64(s.available));
        self.volumes.set(i64::from(s.volumes));
        self.failed_volumes.set(i64::from(s.failed_volumes));
        self.xmits_in_progress.set(i64::from(xmits_in_progress));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        raftfs_runtime::metrics::encode(&self.registry)
    }
}

/// Serves `/metrics`, and the operator page `ui`, until `shutdown` resolves; storage figures
/// and the reconstruction worker's `xmits` are read at each scrape.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    volumes: Arc<Volumes>,
    xmits: Arc<crate::reconstruction::xmits::Xmits>,
    ui: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let render = move || {
        let (metrics, volumes, xmits) = (metrics.clone(), volumes.clone(), xmits.clone());
        async move {
            let storage = tokio::task::spawn_blocking(move || volumes.storage())
                .await
                .unwrap_or_default();
            metrics.set_storage(&storage, xmits.in_progress());
            metrics.encode()
        }
    };
    raftfs_runtime::metrics::serve(listener, render, ui, shutdown).await
}
