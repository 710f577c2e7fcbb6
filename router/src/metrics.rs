//! The router's Prometheus metrics (`/metrics` on `metrics-addr`), `raftfs_router_`: calls by
//! method, nameservice and outcome, their latency, the mount table's reads and age, and the
//! table poller's worker status.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use raftfs_runtime::{WorkerMetrics, WorkerStatuses};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    /// The nameservice the call went to ("" when it went to none: refused by the router,
    /// or answered from the mount table alone).
    nameservice: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    outcome: &'static str,
}

/// The router's metric families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: Family<MethodLabels, Histogram>,
    table_reads: Family<TableLabels, Counter>,
    table_read_at: Gauge,
    mount_points: Gauge,
    workers: WorkerMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("raftfs_router");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "rpc",
            "Calls forwarded or answered, by method, nameservice and outcome",
            calls.clone(),
        );
        let call_seconds = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "rpc_duration_seconds",
            "Time from a call's arrival to its answer, forwarding included",
            call_seconds.clone(),
        );
        let table_reads = Family::<TableLabels, Counter>::default();
        registry.register(
            "mount_table_reads",
            "Reads of the mount table from the nameservice that keeps it, by outcome",
            table_reads.clone(),
        );
        let table_read_at = Gauge::default();
        registry.register(
            "mount_table_state_id",
            "The keeper's state ID the mount table in use was read at",
            table_read_at.clone(),
        );
        let mount_points = Gauge::default();
        registry.register(
            "mount_points",
            "Mount points in the table in use",
            mount_points.clone(),
        );
        let workers = WorkerMetrics::registered(&mut registry);
        Self {
            registry,
            calls,
            call_seconds,
            table_reads,
            table_read_at,
            mount_points,
            workers,
        }
    }

    /// Counts one call.
    pub fn call(&self, method: &'static str, nameservice: &str, ok: bool, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                nameservice: nameservice.to_owned(),
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
        self.call_seconds
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one read of the mount table; on success, the table now in use.
    pub fn table_read(&self, result: Option<(u64, usize)>) {
        let outcome = if result.is_some() { "ok" } else { "error" };
        self.table_reads
            .get_or_create(&TableLabels { outcome })
            .inc();
        if let Some((read_at, mounts)) = result {
            self.table_read_at
                .set(i64::try_from(read_at).unwrap_or(i64::MAX));
            self.mount_points
                .set(i64::try_from(mounts).unwrap_or(i64::MAX));
        }
    }

    /// The Prometheus text of every metric, the workers' brought up to `statuses`.
    pub fn encode(&self, statuses: &WorkerStatuses) -> String {
        self.workers.refresh(statuses);
        raftfs_runtime::metrics::encode(&self.registry)
    }
}

/// Serves `/metrics` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    statuses: WorkerStatuses,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let render = move || {
        let (metrics, statuses) = (metrics.clone(), statuses.clone());
        async move { metrics.encode(&statuses) }
    };
    raftfs_runtime::metrics::serve(listener, render, raftfs_runtime::ui::none(), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_table_reads_are_counted() {
        let m = Metrics::new();
        m.call("stat", "ns1", true, Duration::from_millis(2));
        m.call("stat", "", false, Duration::from_millis(1));
        m.table_read(Some((42, 3)));
        m.table_read(None);
        let text = m.encode(&WorkerStatuses::default());
        assert!(
            text.contains(
                r#"raftfs_router_rpc_total{method="stat",nameservice="ns1",outcome="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"raftfs_router_rpc_total{method="stat",nameservice="",outcome="error"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("raftfs_router_mount_table_state_id 42"),
            "{text}"
        );
        assert!(text.contains("raftfs_router_mount_points 3"), "{text}");
        assert!(
            text.contains(r#"raftfs_router_mount_table_reads_total{outcome="error"} 1"#),
            "{text}"
        );
    }
}
