//! Running a load and reporting it: N concurrent clients share M operations; each records
//! its latencies in an HDR histogram; the report is the same for every target, so raftfs
//! and its peer pay the same client-side overhead.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// What a load run measured (DESIGN §8's JSON fields).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub op: String,
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Failed operations by kind (a refusal's `ErrorKind`, else `other`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Data loads: 10^6 bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_sec: Option<f64>,
}

impl Report {
    /// A run's figures from its latencies (`hist`, in µs): the rate counts the timed
    /// operations; no error is named.
    pub(crate) fn timed(
        target: &str,
        op: &str,
        clients: usize,
        ops: u64,
        errors: u64,
        elapsed: Duration,
        hist: &Histogram<u64>,
    ) -> Self {
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        Report {
            target: target.to_owned(),
            op: op.to_owned(),
            clients,
            ops,
            errors,
            seconds: elapsed.as_secs_f64(),
            ops_per_sec: hist.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            max_ms: hist.max() as f64 / 1000.0,
            first_error: None,
            errors_by_kind: BTreeMap::new(),
            mb_per_sec: None,
        }
    }

    /// The human-readable form.
    pub fn print_text(&self) {
        println!(
            "{} {}: {} ops by {} clients in {:.2} s: {:.0} ops/s; latency ms p50 {:.3} p95 {:.3} p99 {:.3} max {:.3}; {} errors",
            self.target,
            self.op,
            self.ops,
            self.clients,
            self.seconds,
            self.ops_per_sec,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.max_ms,
            self.errors
        );
        if let Some(mb) = self.mb_per_sec {
            println!("{} {}: {mb:.1} MB/s", self.target, self.op);
        }
        if let Some(e) = &self.first_error {
            println!("first error: {e}");
        }
        for (kind, n) in &self.errors_by_kind {
            println!("errors {kind}: {n}");
        }
    }
}

/// A failed operation: its kind (a refusal's `ErrorKind`, `other` for anything else) and
/// what it said.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: String,
    pub message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self {
            kind: "other".to_owned(),
            message,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// How every run of this process paces itself and records failures (`--rate`,
/// `--error-log`): set once, by `main`, before any load starts.
#[derive(Debug, Default)]
pub struct Settings {
    /// Operations per second over all clients (none: as fast as they go).
    pub rate: Option<f64>,
    /// Every failed operation as a JSON line: when it began and ended (ms since the epoch),
    /// the run's operation, its index, kind and message.
    pub error_log: Option<Mutex<std::fs::File>>,
    /// Every timed operation that succeeded as a JSON line: when it began (ms since the
    /// epoch) and its latency (ms), for percentiles over a stretch of the run (a failover).
    pub latency_log: Option<Mutex<std::fs::File>>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Sets the process's [`Settings`]; the first call wins.
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

fn settings() -> &'static Settings {
    SETTINGS.get_or_init(Settings::default)
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Appends the latency of operation `i` (begun at `began_ms`) to the latency log, if any.
fn log_latency(i: u64, began_ms: u64, took: Duration) {
    let Some(log) = &settings().latency_log else {
        return;
    };
    let line = serde_json::json!({ "began_ms": began_ms, "i": i, "ms": took.as_secs_f64() * 1e3 });
    let mut file = log.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(file, "{line}");
}

/// Appends failure `f` of operation `i` (begun at `began_ms`) to the error log, if any.
fn log_failure(name: &str, i: u64, began_ms: u64, f: &Failure) {
    let Some(log) = &settings().error_log else {
        return;
    };
    let line = serde_json::json!({
        "began_ms": began_ms, "ended_ms": epoch_ms(), "op": name, "i": i,
        "kind": f.kind, "message": f.message,
    });
    let mut file = log.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(file, "{line}");
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Runs `ops` operations spread over `clients` concurrent tasks. `op(client, i)` performs
/// operation `i` (0-based, global) for task `client`, using that task's own state; each
/// operation is timed as a whole.
pub async fn run<S, F, Fut, E>(
    target: &str,
    name: &str,
    states: Vec<S>,
    ops: u64,
    show_progress: bool,
    op: F,
) -> Report
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Failure> + Send + 'static,
{
    run_as(true, target, name, states, ops, show_progress, op).await
}

/// Like [`run`], for the untimed preparation of a load (its directories, its files): as fast
/// as it goes whatever `--rate` says, and nothing written to the error or latency log.
pub async fn prepare<S, F, Fut, E>(
    target: &str,
    name: &str,
    states: Vec<S>,
    ops: u64,
    show_progress: bool,
    op: F,
) -> Report
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Failure> + Send + 'static,
{
    run_as(false, target, name, states, ops, show_progress, op).await
}

/// [`run`] (`measured`) or [`prepare`]: each operation timed as a whole.
async fn run_as<S, F, Fut, E>(
    measured: bool,
    target: &str,
    name: &str,
    states: Vec<S>,
    ops: u64,
    show_progress: bool,
    op: F,
) -> Report
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Failure> + Send + 'static,
{
    let timed = move |s, i| {
        let f = op(s, i);
        async move {
            let t = Instant::now();
            f.await.map(|()| t.elapsed())
        }
    };
    execute(measured, target, name, states, ops, show_progress, timed).await
}

/// Like [`run`], but each operation reports the duration to record itself: for operations
/// whose measured part follows an untimed set-up (write, then time the read of it).
pub async fn run_timed<S, F, Fut, E>(
    target: &str,
    name: &str,
    states: Vec<S>,
    ops: u64,
    show_progress: bool,
    op: F,
) -> Report
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Duration, E>> + Send,
    E: Into<Failure> + Send + 'static,
{
    execute(true, target, name, states, ops, show_progress, op).await
}

/// The loop behind every run: `measured` runs are paced by `--rate` and logged.
async fn execute<S, F, Fut, E>(
    measured: bool,
    target: &str,
    name: &str,
    states: Vec<S>,
    ops: u64,
    show_progress: bool,
    op: F,
) -> Report
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Duration, E>> + Send,
    E: Into<Failure> + Send + 'static,
{
    let clients = states.len().max(1);
    let progress = if show_progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(ops), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec}",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(format!("{target} {name}"));
        bar
    } else {
        ProgressBar::hidden()
    };
    let op = Arc::new(op);
    let start = Instant::now();
    let rate = settings().rate.filter(|r| measured && *r > 0.0);
    let mut tasks = Vec::with_capacity(clients);
    for (c, state) in states.into_iter().enumerate() {
        let op = op.clone();
        let progress = progress.clone();
        let state = Arc::new(state);
        let name = name.to_owned();
        // Task c does operations c, c + clients, c + 2*clients, ...
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut by_kind = BTreeMap::<String, u64>::new();
            let mut i = c as u64;
            while i < ops {
                // Behind its pace, an operation's latency counts from when it was due (a
                // paced load that falls behind would otherwise hide its queueing).
                let mut late = Duration::ZERO;
                if let Some(rate) = rate {
                    // Operation i is due at i / rate seconds: the run's pace, not each task's.
                    let due = Duration::try_from_secs_f64(i as f64 / rate)
                        .ok()
                        .and_then(|d| start.checked_add(d))
                        .unwrap_or_else(Instant::now);
                    tokio::time::sleep_until(due.into()).await;
                    late = Instant::now().saturating_duration_since(due);
                }
                let began_ms = epoch_ms();
                match op(state.clone(), i).await {
                    Ok(took) => {
                        let took = took + late;
                        if measured {
                            log_latency(i, began_ms, took);
                        }
                        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                        let _ = hist.record(us);
                    }
                    Err(e) => {
                        let f: Failure = e.into();
                        if measured {
                            log_failure(&name, i, began_ms, &f);
                        }
                        errors += 1;
                        *by_kind.entry(f.kind.clone()).or_default() += 1;
                        first_error.get_or_insert(f.message);
                    }
                }
                progress.inc(1);
                i += clients as u64;
            }
            (hist, errors, first_error, by_kind)
        }));
    }
    let mut hist = new_histogram();
    let mut errors = 0;
    let mut first_error = None;
    let mut errors_by_kind = BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok((h, e, fe, kinds)) => {
                let _ = hist.add(&h);
                errors += e;
                if first_error.is_none() {
                    first_error = fe;
                }
                for (k, n) in kinds {
                    *errors_by_kind.entry(k).or_default() += n;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("load task failed: {e}"));
            }
        }
    }
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    Report {
        first_error,
        errors_by_kind,
        ..Report::timed(target, name, clients, ops, errors, elapsed, &hist)
    }
}
