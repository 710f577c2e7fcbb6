//! The blockserver's operator page (`/ui` on its metrics port, issue 24), HTML or JSON from
//! the same handler ([`raftfs_runtime::ui`]): its volumes and the blocks each pool keeps on
//! them, the block scanner's progress, the reconstruction tasks it runs, and the
//! metaservers it reports to. Gathered from counters kept as blocks come and go: no
//! directory is listed to render it.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use raftfs_runtime::ui::{Answered, Format, respond, show};
use serde::Serialize;

use crate::metaservers::Metaservers;
use crate::reconstruction::Worker;
use crate::reconstruction::worker::RunningTask;
use crate::scanner::{ScanProgress, SharedProgress};
use crate::volumes::{VolumeView, Volumes};

/// What the page is gathered from.
#[derive(Clone, Debug)]
pub struct Sources {
    pub id: u64,
    pub addr: String,
    pub volumes: Arc<Volumes>,
    pub worker: Arc<Worker>,
    pub scan: SharedProgress,
    pub metaservers: Metaservers,
    pub started_ms: u64,
}

/// A metaserver this server reports to.
#[derive(Debug, Clone, Serialize)]
pub struct MetaRow {
    pub addr: String,
    /// Its nameservice (empty: the unnamed one).
    pub nameservice: String,
    pub pool: u64,
}

/// `/ui`: this blockserver.
#[derive(Debug, Template, Serialize)]
#[template(path = "block-overview.html")]
pub struct Overview {
    pub answered: Answered,
    pub addr: String,
    pub rack: String,
    pub started_ms: u64,
    pub volumes: Vec<VolumeView>,
    pub failed_at_open: u32,
    pub blocks: u64,
    pub used: u64,
    pub scanner: ScanProgress,
    pub xmits_in_progress: u32,
    pub tasks: Vec<RunningTask>,
    pub metaservers: Vec<MetaRow>,
}

impl Overview {
    fn gather(s: &Sources) -> Self {
        let volumes = s.volumes.views();
        let blocks = volumes
            .iter()
            .filter(|v| v.working)
            .flat_map(|v| v.pools.iter().map(|p| p.blocks))
            .sum();
        let used = volumes
            .iter()
            .filter(|v| v.working)
            .map(|v| v.used)
            .fold(0, u64::saturating_add);
        Self {
            answered: Answered {
                server: "blockserver",
                id: s.id,
                role: "blockserver".to_owned(),
                state_id: None,
                version: raftfs_core::level::binary_version(),
                at_ms: raftfs_runtime::simulation::now_ms(),
                json_href: "?format=json".to_owned(),
            },
            addr: s.addr.clone(),
            rack: s.worker.rack().to_owned(),
            started_ms: s.started_ms,
            volumes,
            failed_at_open: s.volumes.failed_at_open(),
            blocks,
            used,
            scanner: s.scan.get(),
            xmits_in_progress: s.worker.xmits.in_progress(),
            tasks: s.worker.running_tasks(),
            metaservers: s
                .metaservers
                .links()
                .iter()
                .map(|l| MetaRow {
                    addr: l.addr.clone(),
                    nameservice: l
                        .pool
                        .name
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    pool: l.pool.id,
                })
                .collect(),
        }
    }

    /// The scanner's pass under way, in percent of its blocks.
    pub fn scan_pct(&self) -> u64 {
        show::percent(self.scanner.pass_done, self.scanner.pass_blocks)
    }

    /// How long ago `at` (ms since the epoch) was, as of the page.
    pub fn ago(&self, at: impl std::borrow::Borrow<Option<u64>>) -> String {
        show::ago(at.borrow().unwrap_or(0), self.answered.at_ms)
    }

    pub fn started_ago(&self) -> String {
        show::ago(self.started_ms, self.answered.at_ms)
    }

    pub fn volume_pct(v: &VolumeView) -> u64 {
        show::percent(v.capacity.saturating_sub(v.available), v.capacity)
    }
}

/// The routes of the blockserver's page.
pub fn routes(sources: Sources) -> Router {
    Router::new()
        .route("/ui", get(overview))
        .route("/ui/", get(overview))
        .with_state(sources)
        .merge(raftfs_runtime::ui::common_routes())
}

#[tracing::instrument(skip_all)]
async fn overview(
    State(s): State<Sources>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let format = match Format::of(&q, &headers) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    // Sizes come from statvfs: a blocking call, off the runtime's threads.
    match tokio::task::spawn_blocking(move || Overview::gather(&s)).await {
        Ok(page) => respond(format, &page),
        Err(e) => raftfs_runtime::ui::UiError::Render(e.to_string()).into_response(),
    }
}
