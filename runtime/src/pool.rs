//! A few threads of their own for long reads (a page of `fsck`, a content summary over a large
//! tree). Tokio's blocking pool is where the Raft log's writes and fsyncs run; long reads
//! there would take its threads while the journal waits, and a burst of them would start
//! hundreds of threads. Here they run beside it, on a fixed number of threads, behind a
//! bounded queue: past it a caller is told the server is busy rather than queued forever.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Why a job did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every thread is busy and the queue is full: try again later.
    #[error("the {0} pool is busy")]
    Busy(String),
    /// The job panicked (the thread goes on with the next job).
    #[error("a job of the {0} pool panicked")]
    Panicked(String),
    /// The pool is shutting down.
    #[error("the {0} pool is closed")]
    Closed(String),
}

/// A fixed set of threads running jobs from a bounded queue; cheap to clone. The threads end
/// when the last clone is dropped and the queue is drained.
#[derive(Debug, Clone)]
pub struct ReadPool {
    name: Arc<str>,
    jobs: SyncSender<Job>,
}

impl ReadPool {
    /// `threads` threads named `name-N`, and a queue of `queue` jobs waiting for them.
    pub fn new(name: &str, threads: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || run_jobs(&rx))?;
        }
        Ok(Self {
            name: name.into(),
            jobs,
        })
    }

    /// Runs `f` on one of the pool's threads and waits (asynchronously) for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        // A simulation runs every member on one thread (see `simulation`).
        if crate::simulation::active() {
            return catch_unwind(AssertUnwindSafe(f))
                .map_err(|_| PoolError::Panicked(self.name.to_string()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A caller that gave up (its deadline passed) does not keep a thread busy.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PoolError::Busy(self.name.to_string())),
            Err(TrySendError::Disconnected(_)) => {
                return Err(PoolError::Closed(self.name.to_string()));
            }
        }
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(PoolError::Panicked(self.name.to_string())),
            Err(_) => Err(PoolError::Closed(self.name.to_string())),
        }
    }
}

/// One thread's loop: the next job, until every sender is gone.
fn run_jobs(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let guard = match rx.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            guard.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    /// Jobs run on the pool's own threads; past the queue a caller is told it is busy; a
    /// panicking job is reported and the thread goes on.
    #[tokio::test]
    async fn jobs_run_on_the_pool_queue_is_bounded_and_panics_are_contained() {
        let pool = ReadPool::new("test-reads", 1, 1).expect("pool");
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("run");
        assert_eq!(name.as_deref(), Some("test-reads-0"));

        // Hold the only thread, fill the one queue slot, and the next job is refused.
        let (release, wait) = channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let holding = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move || {
                    let _ = started_tx.send(());
                    let _ = wait.recv();
                })
                .await
            }
        });
        started.await.expect("the first job started");
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| 7).await }
        });
        // The queued job is sent when its task first runs (this test's runtime has one
        // thread: yielding lets it run).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let refused = tokio::time::timeout(std::time::Duration::from_secs(10), pool.run(|| 0))
            .await
            .expect("a full queue answers at once");
        assert!(
            matches!(refused, Err(PoolError::Busy(_))),
            "a full queue refuses the next job: {refused:?}"
        );
        release.send(()).expect("release");
        holding.await.expect("join").expect("held job");
        assert_eq!(queued.await.expect("join"), Ok(7));

        let panicked = pool.run(|| -> u8 { panic!("on purpose") }).await;
        assert!(matches!(panicked, Err(PoolError::Panicked(_))));
        assert_eq!(pool.run(|| 1).await, Ok(1), "the thread survived");
    }
}
