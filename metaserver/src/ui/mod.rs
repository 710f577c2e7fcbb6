//! The metaserver's operator pages (`/ui` on its metrics port, issue 24), HTML or JSON from
//! the same handler ([`raftfs_runtime::ui`]). Every member serves them, each from its own
//! view: the active's is the one that decides (liveness, reconstruction); a standby's or an
//! observer's says so in its header, with the state ID it was read at.
//!
//! The port authenticates nobody, as `/metrics` does not; file names (the health page's
//! `fsck` listing) are shown only on a simple-mode cluster, where any caller may already
//! claim the superuser's name and run `metactl fsck`.

pub mod pages;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use raftfs_runtime::ui::{Format, UiError, respond};

use crate::error::MetaError;
use crate::namespace::NsPath;
use crate::node::MetaNode;
use pages::{BlockServers, FsckPage, HealthPage, Overview, Reconstruction, Workers};

/// Entries one `fsck` page of the health page walks (the gRPC call allows up to
/// `FSCK_PAGE_MAX`; a page meant to render in a browser stays smaller).
const UI_FSCK_PAGE: usize = 2_000;

/// What the handlers share.
#[derive(Clone, Debug)]
struct Ui {
    node: MetaNode,
    list_files: bool,
}

/// The routes of the metaserver's pages. `list_files`: whether the health page lists the
/// files with unhealthy groups (a simple-mode cluster only).
pub fn routes(node: MetaNode, list_files: bool) -> Router {
    Router::new()
        .route("/ui", get(overview))
        .route("/ui/", get(overview))
        .route("/ui/blockservers", get(blockservers))
        .route("/ui/health", get(health))
        .route("/ui/reconstruction", get(reconstruction))
        .route("/ui/workers", get(workers))
        .with_state(Ui { node, list_files })
        .merge(raftfs_runtime::ui::common_routes())
}

type Params = Query<HashMap<String, String>>;

fn refuse(e: impl Into<UiError>) -> Response {
    e.into().into_response()
}

fn unavailable(e: MetaError) -> UiError {
    UiError::Unavailable(e.to_string())
}

#[tracing::instrument(skip_all)]
async fn overview(State(ui): State<Ui>, Query(q): Params, headers: HeaderMap) -> Response {
    let format = match Format::of(&q, &headers) {
        Ok(f) => f,
        Err(e) => return refuse(e),
    };
    let level = ui
        .node
        .read_local(|kv| crate::namespace::upgrade::load(kv))
        .await
        .ok()
        .map(|u| u32::from(u.level.0));
    respond(format, &Overview::gather(&ui.node, level))
}

#[tracing::instrument(skip_all)]
async fn blockservers(State(ui): State<Ui>, Query(q): Params, headers: HeaderMap) -> Response {
    match Format::of(&q, &headers) {
        Ok(format) => respond(format, &BlockServers::gather(&ui.node)),
        Err(e) => refuse(e),
    }
}

#[tracing::instrument(skip_all)]
async fn reconstruction(State(ui): State<Ui>, Query(q): Params, headers: HeaderMap) -> Response {
    let format = match Format::of(&q, &headers) {
        Ok(f) => f,
        Err(e) => return refuse(e),
    };
    // The journaled budgets, as `metactl reconstruction throttle` set them.
    let throttle = ui
        .node
        .read_local(|kv| crate::namespace::throttle::load(kv))
        .await;
    match throttle {
        Ok(t) => respond(format, &Reconstruction::gather(&ui.node, t)),
        Err(e) => refuse(unavailable(e)),
    }
}

#[tracing::instrument(skip_all)]
async fn workers(State(ui): State<Ui>, Query(q): Params, headers: HeaderMap) -> Response {
    match Format::of(&q, &headers) {
        Ok(format) => respond(format, &Workers::gather(&ui.node)),
        Err(e) => refuse(e),
    }
}

#[tracing::instrument(skip_all, fields(path))]
async fn health(State(ui): State<Ui>, Query(q): Params, headers: HeaderMap) -> Response {
    let format = match Format::of(&q, &headers) {
        Ok(f) => f,
        Err(e) => return refuse(e),
    };
    let path = q.get("path").map_or("/", String::as_str);
    tracing::Span::current().record("path", path);
    let fsck = if ui.list_files {
        match fsck(&ui.node, path, q.get("after").map(String::as_str)).await {
            Ok(page) => Some(page),
            Err(e) => return refuse(e),
        }
    } else {
        None
    };
    let mut page = HealthPage::new(&ui.node, None, ui.list_files);
    page.answered.json_href = raftfs_runtime::ui::json_href(&q);
    if let Some((fsck, state_id)) = fsck {
        // The listing was read at its own snapshot: the page says which.
        page.answered.state_id = Some(state_id);
        page.fsck = Some(fsck);
    }
    respond(format, &page)
}

/// One page of `fsck` at or below `path` from `after`, read on the long-read pool at this
/// member's applied state; with the state ID it was read at.
async fn fsck(
    node: &MetaNode,
    path: &str,
    after: Option<&str>,
) -> Result<(FsckPage, u64), UiError> {
    let bad = |e: crate::namespace::NsError| UiError::BadRequest(e.to_string());
    let root = NsPath::parse(path).map_err(bad)?;
    let after = after
        .filter(|a| !a.is_empty())
        .map(NsPath::parse)
        .transpose()
        .map_err(bad)?;
    let registry = node.blocks.registry.clone();
    let shown = root.to_string();
    let reader = node.clone();
    let read = node
        .long_reads
        .run(move || {
            crate::service::namespace::view(&reader, 0, |kv| {
                crate::redundancy::fsck_page(
                    kv,
                    &registry,
                    &root,
                    after.as_ref(),
                    UI_FSCK_PAGE,
                    false,
                )
            })
        })
        .await
        .map_err(|e| UiError::Unavailable(e.to_string()))?;
    let ((report, next), state_id) = read.map_err(|e| match e {
        MetaError::Namespace { .. } => UiError::NotFound(e.to_string()),
        other => unavailable(other),
    })?;
    Ok((
        FsckPage {
            path: shown,
            files: report.files,
            groups: report.groups,
            healthy: report.healthy,
            degraded: report.degraded,
            missing: report.missing,
            unhealthy: report.unhealthy.iter().map(pages::FileRow::of).collect(),
            next_after: next,
        },
        state_id,
    ))
}
