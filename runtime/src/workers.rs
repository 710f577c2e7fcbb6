//! Background jobs with an owner (as Garage's background workers): each has a name, a status
//! an operator can read (`metactl cluster status --json`, `/metrics`), and one stop signal
//! that the server sends on shutdown and then waits for, so that a SIGTERM ends every job
//! before the process exits instead of leaving detached tasks to die mid-round.
//!
//! A job is a round that is safe to abandon at any await point and to run again (a scan that
//! rebuilds its result from scratch, proposals that the journal dedupes or refuses): a stop
//! that arrives mid-round cancels the round.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What one round of a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The round ran and handled `items` things (groups scanned, files recovered, ...).
    Done { items: u64 },
    /// Not this member's turn (most jobs run only on the active); not counted as a run.
    Skipped,
}

/// Where a worker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Waiting for its next round.
    Idle,
    /// In a round.
    Running,
    /// Stopped by the server's shutdown; it runs no more rounds.
    Stopped,
}

/// What an operator sees of one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub state: WorkerState,
    /// Time between the starts of two rounds.
    pub period_ms: u64,
    /// Rounds that ran (skipped ones are not counted).
    pub runs: u64,
    /// Rounds that failed.
    pub errors: u64,
    /// Items handled by every round so far.
    pub items: u64,
    /// Items handled by the last round that ran.
    pub last_items: u64,
    /// When the last round that ran ended, ms since the epoch.
    pub last_run_ms: Option<u64>,
    /// The last round's error, cleared by the next round that succeeds.
    pub last_error: Option<String>,
}

impl WorkerStatus {
    fn new(name: &str, period: Duration) -> Self {
        Self {
            name: name.to_owned(),
            state: WorkerState::Idle,
            period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
            runs: 0,
            errors: 0,
            items: 0,
            last_items: 0,
            last_run_ms: None,
            last_error: None,
        }
    }
}

/// The statuses of a server's workers, shared with whoever reports them.
#[derive(Debug, Clone, Default)]
pub struct WorkerStatuses(Arc<Mutex<BTreeMap<String, WorkerStatus>>>);

impl WorkerStatuses {
    /// Every worker's status, by name.
    pub fn snapshot(&self) -> Vec<WorkerStatus> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, WorkerStatus>> {
        // A status is plain data: a panic elsewhere while the lock was held leaves it usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut WorkerStatus)) {
        if let Some(s) = self.lock().get_mut(name) {
            f(s);
        }
    }
}

/// A server's background workers: started by [`Workers::spawn_periodic`], stopped together
/// by [`Workers::stop`].
#[derive(Debug)]
pub struct Workers {
    statuses: WorkerStatuses,
    stop: watch::Sender<bool>,
    tasks: Vec<(String, JoinHandle<()>)>,
}

impl Default for Workers {
    fn default() -> Self {
        Self::new()
    }
}

impl Workers {
    pub fn new() -> Self {
        Self {
            statuses: WorkerStatuses::default(),
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// The statuses, to report.
    pub fn statuses(&self) -> WorkerStatuses {
        self.statuses.clone()
    }

    /// Runs `job` every `every` (a round that overruns delays the next, never stacks) until
    /// the workers are stopped.
    pub fn spawn_periodic<F, Fut, E>(&mut self, name: &str, every: Duration, job: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Outcome, E>> + Send + 'static,
        E: Display + 'static,
    {
        self.statuses
            .lock()
            .insert(name.to_owned(), WorkerStatus::new(name, every));
        let task = tokio::spawn(run_periodic(
            name.to_owned(),
            every,
            job,
            self.statuses.clone(),
            self.stop.subscribe(),
        ));
        self.tasks.push((name.to_owned(), task));
    }

    /// Stops every worker: a round in progress is cancelled at its next await point. Waits up
    /// to `grace` for each (a round stuck in blocking code is then left to the process exit)
    /// and returns the final statuses.
    pub async fn stop(self, grace: Duration) -> Vec<WorkerStatus> {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
                abort.abort();
                tracing::warn!(worker = %name, ?grace, "worker did not stop in time; aborted");
                self.statuses
                    .update(&name, |s| s.state = WorkerState::Stopped);
            }
        }
        self.statuses.snapshot()
    }
}

async fn run_periodic<F, Fut, E>(
    name: String,
    every: Duration,
    mut job: F,
    statuses: WorkerStatuses,
    mut stop: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Outcome, E>> + Send,
    E: Display,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            _ = tick.tick() => {}
        }
        statuses.update(&name, |s| s.state = WorkerState::Running);
        let outcome = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = job() => r,
        };
        statuses.update(&name, |s| record(s, outcome, &name));
    }
    let runs = {
        let mut runs = 0;
        statuses.update(&name, |s| {
            s.state = WorkerState::Stopped;
            runs = s.runs;
        });
        runs
    };
    tracing::info!(worker = %name, runs, "worker stopped");
}

/// Folds one round's outcome into the status.
fn record<E: Display>(s: &mut WorkerStatus, outcome: Result<Outcome, E>, name: &str) {
    s.state = WorkerState::Idle;
    match outcome {
        Ok(Outcome::Skipped) => {}
        Ok(Outcome::Done { items }) => {
            s.runs += 1;
            s.items = s.items.saturating_add(items);
            s.last_items = items;
            s.last_run_ms = Some(now_ms());
            s.last_error = None;
        }
        Err(e) => {
            tracing::warn!(worker = %name, error = %e, "worker round failed");
            s.runs += 1;
            s.errors += 1;
            s.last_items = 0;
            s.last_run_ms = Some(now_ms());
            s.last_error = Some(e.to_string());
        }
    }
}

fn now_ms() -> u64 {
    crate::simulation::now_ms()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn status(workers: &Workers, name: &str) -> WorkerStatus {
        workers
            .statuses()
            .snapshot()
            .into_iter()
            .find(|s| s.name == name)
            .expect("worker is listed")
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_are_counted_errors_kept_and_skips_ignored() {
        let mut workers = Workers::new();
        let round = Arc::new(AtomicU64::new(0));
        let r = round.clone();
        workers.spawn_periodic("scan", Duration::from_millis(100), move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                match n % 3 {
                    0 => Ok(Outcome::Done { items: 5 }),
                    1 => Ok(Outcome::Skipped),
                    _ => Err("disk on fire"),
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
        let s = status(&workers, "scan");
        assert_eq!(
            round.load(Ordering::SeqCst),
            3,
            "rounds at 0, 100 and 200 ms"
        );
        assert_eq!((s.runs, s.errors, s.items), (2, 1, 5));
        assert_eq!(s.last_error.as_deref(), Some("disk on fire"));
        assert_eq!(s.state, WorkerState::Idle);
        let last = workers.stop(Duration::from_secs(1)).await;
        assert!(last.iter().all(|s| s.state == WorkerState::Stopped));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_cancels_a_round_in_progress_and_runs_no_more() {
        let mut workers = Workers::new();
        let started = Arc::new(AtomicU64::new(0));
        let s2 = started.clone();
        workers.spawn_periodic("slow", Duration::from_millis(10), move || {
            s2.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, String>(Outcome::Done { items: 1 })
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(status(&workers, "slow").state, WorkerState::Running);
        let statuses = workers.statuses();
        let last = workers.stop(Duration::from_secs(1)).await;
        assert_eq!(last[0].state, WorkerState::Stopped);
        assert_eq!(last[0].runs, 0, "the cancelled round is not counted");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(statuses.snapshot()[0].state, WorkerState::Stopped);
    }
}
