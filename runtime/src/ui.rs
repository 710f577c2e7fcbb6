//! The operator's pages (`/ui` on the metrics port of every server, issue 24): what every
//! server's pages share, written once. A page is one value, gathered by its server's
//! handler, that renders as HTML through its template or as JSON through serde, so the two
//! can never disagree. Every page says who answered and at which state (the consistency
//! contract, DESIGN §5: a standby's page is as old as its applied index).

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// How a page is wanted: `?format=json` or an `Accept` naming JSON before HTML gets JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
}

impl Format {
    /// The format a request asks for; an unknown `format` is refused.
    pub fn of(query: &HashMap<String, String>, headers: &HeaderMap) -> Result<Self, UiError> {
        match query.get("format").map(String::as_str) {
            Some("json") => return Ok(Format::Json),
            Some("html") => return Ok(Format::Html),
            Some(other) => {
                return Err(UiError::BadRequest(format!(
                    "format {other:?}: expected html or json"
                )));
            }
            None => {}
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(if prefers_json(accept) {
            Format::Json
        } else {
            Format::Html
        })
    }
}

/// Whether an `Accept` header names JSON and no HTML before it (browsers send
/// `text/html,...,*/*`; `curl -H 'Accept: application/json'` gets JSON).
fn prefers_json(accept: &str) -> bool {
    for kind in accept.split(',') {
        let kind = kind.split(';').next().unwrap_or("").trim();
        match kind {
            "application/json" => return true,
            "text/html" => return false,
            _ => {}
        }
    }
    false
}

/// Who answered a page, and as of when (DESIGN §5): the member or server, its role, and
/// the state ID (applied index) the page was read at; blockservers have none.
#[derive(Debug, Clone, Serialize)]
pub struct Answered {
    /// `metaserver` or `blockserver`.
    pub server: &'static str,
    pub id: u64,
    /// `active`, `standby`, `observer`, `candidate`; `blockserver`.
    pub role: String,
    pub state_id: Option<u64>,
    pub version: String,
    /// When the page was gathered, ms since the epoch.
    pub at_ms: u64,
    /// The link to this page's JSON (its own query kept: `/ui/health?path=...`).
    #[serde(skip)]
    pub json_href: String,
}

/// The link to the JSON of a page asked for with `query`: the same parameters and
/// `format=json`, in a stable order.
pub fn json_href(query: &HashMap<String, String>) -> String {
    let mut params: Vec<(&String, &String)> = query
        .iter()
        .filter(|(k, _)| k.as_str() != "format")
        .collect();
    params.sort();
    let mut out = String::from("?");
    for (k, v) in params {
        out.push_str(&format!("{}={}&", query_escape(k), query_escape(v)));
    }
    out.push_str("format=json");
    out
}

/// `s` as a URL query value: everything but unreserved characters and `/` percent-encoded.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A refused page request.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("cannot render the page: {0}")]
    Render(String),
}

impl UiError {
    fn status(&self) -> StatusCode {
        match self {
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            UiError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        (self.status(), json_type(), body).into_response()
    }
}

fn json_type() -> [(header::HeaderName, HeaderValue); 1] {
    [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )]
}

/// A page as `format` asks: its template's HTML or its JSON.
pub fn respond<P: askama::Template + Serialize>(format: Format, page: &P) -> Response {
    match format {
        Format::Json => match serde_json::to_string(page) {
            Ok(body) => (json_type(), body).into_response(),
            Err(e) => UiError::Render(e.to_string()).into_response(),
        },
        Format::Html => match page.render() {
            Ok(body) => axum::response::Html(body).into_response(),
            Err(e) => UiError::Render(e.to_string()).into_response(),
        },
    }
}

/// What the templates print: sizes, ages and shares in an operator's units.
/// The figures take `u64` or `&u64` alike (a template's loop variables are references).
pub mod show {
    use std::borrow::Borrow;

    /// `n` bytes in binary units (`1.5 GiB`).
    pub fn bytes(n: impl Borrow<u64>) -> String {
        let n = *n.borrow();
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut v = n as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            format!("{n} B")
        } else {
            format!("{v:.1} {}", UNITS[unit])
        }
    }

    /// `part` of `whole` in whole percent, 0 when `whole` is 0.
    pub fn percent(part: u64, whole: u64) -> u64 {
        if whole == 0 {
            0
        } else {
            ((u128::from(part) * 100) / u128::from(whole)).min(100) as u64
        }
    }

    /// How long ago `then_ms` was at `now_ms`, as `3 s` / `4 min` / `2 h` / `5 d`;
    /// `never` for 0.
    pub fn ago(then_ms: impl Borrow<u64>, now_ms: impl Borrow<u64>) -> String {
        let (then_ms, now_ms) = (*then_ms.borrow(), *now_ms.borrow());
        if then_ms == 0 {
            return "never".to_owned();
        }
        duration_ms(now_ms.saturating_sub(then_ms)) + " ago"
    }

    /// A span of milliseconds in the largest whole unit.
    pub fn duration_ms(ms: impl Borrow<u64>) -> String {
        let ms = *ms.borrow();
        let s = ms / 1000;
        match s {
            0 => format!("{ms} ms"),
            1..=119 => format!("{s} s"),
            120..=7199 => format!("{} min", s / 60),
            7200..=172_799 => format!("{} h", s / 3600),
            _ => format!("{} d", s / 86_400),
        }
    }

    /// Bytes per second, or `unlimited` for 0.
    pub fn rate(bytes_per_sec: impl Borrow<u64>) -> String {
        let bytes_per_sec = *bytes_per_sec.borrow();
        if bytes_per_sec == 0 {
            "unlimited".to_owned()
        } else {
            format!("{}/s", bytes(bytes_per_sec))
        }
    }
}

/// The stylesheet every page links (`/ui/style.css`): served by the same router, so a page
/// needs nothing from outside the server.
pub const STYLE: &str = include_str!("../templates/style.css");

/// No pages: for a server that has none (the router).
pub fn none() -> axum::Router {
    axum::Router::new()
}

/// The routes every server's pages share (the stylesheet), merged into its own.
pub fn common_routes() -> axum::Router {
    axum::Router::new().route(
        "/ui/style.css",
        axum::routing::get(|| async {
            (
                [(header::CONTENT_TYPE, HeaderValue::from_static("text/css"))],
                STYLE,
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_asked_for_by_query_or_accept() {
        let mut q = HashMap::new();
        let mut h = HeaderMap::new();
        assert_eq!(Format::of(&q, &h).ok(), Some(Format::Html));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(Format::of(&q, &h).ok(), Some(Format::Json));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,application/json;q=0.9"),
        );
        assert_eq!(Format::of(&q, &h).ok(), Some(Format::Html));
        q.insert("format".to_owned(), "json".to_owned());
        assert_eq!(Format::of(&q, &h).ok(), Some(Format::Json));
        q.insert("format".to_owned(), "xml".to_owned());
        assert!(matches!(Format::of(&q, &h), Err(UiError::BadRequest(_))));
    }

    #[test]
    fn the_json_link_keeps_the_query() {
        let mut q = HashMap::new();
        assert_eq!(json_href(&q), "?format=json");
        q.insert("path".to_owned(), "/a b/c&d".to_owned());
        q.insert("format".to_owned(), "html".to_owned());
        q.insert("after".to_owned(), "/a b/x".to_owned());
        assert_eq!(
            json_href(&q),
            "?after=/a%20b/x&path=/a%20b/c%26d&format=json"
        );
    }

    #[test]
    fn figures_read_as_an_operator_expects() {
        assert_eq!(show::bytes(512), "512 B");
        assert_eq!(show::bytes(3 << 29), "1.5 GiB");
        assert_eq!(show::percent(1, 3), 33);
        assert_eq!(show::percent(5, 0), 0);
        assert_eq!(show::percent(u64::MAX, 1), 100);
        assert_eq!(show::ago(0, 5), "never");
        assert_eq!(show::ago(1_000, 4_500), "3 s ago");
        assert_eq!(show::duration_ms(3 * 3_600_000), "3 h");
        assert_eq!(show::rate(0), "unlimited");
    }
}
