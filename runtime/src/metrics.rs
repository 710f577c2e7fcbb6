//! The workers' statuses as Prometheus metrics (`<prefix>_worker_*{worker="..."}`), refreshed
//! from [`WorkerStatuses`] when `/metrics` is scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::workers::{WorkerState, WorkerStatuses};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

/// The worker metric families of one server.
#[derive(Debug, Clone, Default)]
pub struct WorkerMetrics {
    runs: Family<WorkerLabels, Counter>,
    errors: Family<WorkerLabels, Counter>,
    items: Family<WorkerLabels, Counter>,
    last_run: Family<WorkerLabels, Gauge>,
    running: Family<WorkerLabels, Gauge>,
}

impl WorkerMetrics {
    /// The families, registered in `registry`.
    pub fn registered(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "worker_runs",
            "Rounds a background worker ran",
            m.runs.clone(),
        );
        registry.register(
            "worker_errors",
            "Rounds of a background worker that failed",
            m.errors.clone(),
        );
        registry.register(
            "worker_items",
            "Items (groups scanned, files recovered, ...) a background worker handled",
            m.items.clone(),
        );
        registry.register(
            "worker_last_run_timestamp_seconds",
            "When a background worker's last round ended (0: none yet)",
            m.last_run.clone(),
        );
        registry.register(
            "worker_running",
            "1 while a background worker is in a round, 0 when idle, -1 once stopped",
            m.running.clone(),
        );
        m
    }

    /// Brings the metrics up to `statuses`.
    pub fn refresh(&self, statuses: &WorkerStatuses) {
        for s in statuses.snapshot() {
            let l = WorkerLabels {
                worker: s.name.clone(),
            };
            catch_up(&self.runs.get_or_create(&l), s.runs);
            catch_up(&self.errors.get_or_create(&l), s.errors);
            catch_up(&self.items.get_or_create(&l), s.items);
            let last = s.last_run_ms.unwrap_or(0) / 1000;
            self.last_run
                .get_or_create(&l)
                .set(i64::try_from(last).unwrap_or(i64::MAX));
            self.running.get_or_create(&l).set(match s.state {
                WorkerState::Idle => 0,
                WorkerState::Running => 1,
                WorkerState::Stopped => -1,
            });
        }
    }
}

/// Raises a counter to `total` (the statuses count; counters only go up).
fn catch_up(counter: &Counter, total: u64) {
    let have = counter.get();
    if total > have {
        counter.inc_by(total - have);
    }
}

/// The Prometheus text of every metric in `registry` (empty if it cannot be encoded).
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// Serves `/metrics` on `listener` until `shutdown` resolves, each scrape answered with the
/// text `render` makes then (the one metrics endpoint of every server), beside the server's
/// operator pages `ui` (`/ui`, [`crate::ui`]; an empty router for none).
pub async fn serve<F, Fut>(
    listener: tokio::net::TcpListener,
    render: F,
    ui: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = String> + Send + 'static,
{
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(render))
        .merge(ui);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
