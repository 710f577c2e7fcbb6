//! Reads on observers (DESIGN §5). The client learns the observers from any member
//! (`Admin.Members`), sticks to one while it answers, and moves to the next when one is
//! behind (`ObserverBehind`), unreachable, paused, or no longer an observer. When none can
//! answer, the caller falls back to the active. Which observer answers never weakens the
//! guarantees: every request carries the client's state ID, and an observer answers only from
//! a state at least that new.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raftfs_core::member::MemberRole;
use raftfs_proto as pb;
use raftfs_proto::admin_client::AdminClient;

use crate::error::ClientError;
use crate::failover::{Next, Rpc, Targets, classify};

/// How often the observer list is refreshed even when all is well (membership changes).
const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// An observer that failed a read is skipped for this long, so that a paused or partitioned
/// observer costs one attempt timeout, not one per read.
const SKIP_FAILED_FOR: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    addrs: Vec<String>,
    /// When each observer last failed a read.
    failed: Vec<Option<Instant>>,
    /// Index of the observer reads go to first.
    current: usize,
    refreshed: Option<Instant>,
    /// Set when every observer failed: refresh before the next read.
    stale: bool,
}

/// The observers this client knows, and which one it reads from.
#[derive(Debug, Default)]
pub struct Observers {
    state: Mutex<State>,
}

impl Observers {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn needs_refresh(&self) -> bool {
        let s = self.lock();
        s.stale || s.refreshed.is_none_or(|t| t.elapsed() >= REFRESH_EVERY)
    }

    /// Asks the cluster (any member answers) which members are observers.
    async fn refresh(&self, targets: &Targets, deadline: Duration) {
        let r = targets
            .call(deadline, |ch| async move {
                AdminClient::new(ch)
                    .members(pb::MembersRequest {})
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await;
        let mut s = self.lock();
        s.refreshed = Some(Instant::now());
        s.stale = false;
        match r {
            Ok(members) => {
                let addrs: Vec<String> = members
                    .members
                    .into_iter()
                    .filter(|m| m.role == MemberRole::Observer.as_str())
                    .map(|m| m.addr)
                    .collect();
                if addrs != s.addrs {
                    // Start somewhere different per client, so clients spread over observers.
                    s.current = if addrs.is_empty() {
                        0
                    } else {
                        rand::random_range(0..addrs.len())
                    };
                    s.failed = vec![None; addrs.len()];
                    s.addrs = addrs;
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not refresh the observer list"),
        }
    }

    /// The observers in the order to try them: the current one first, skipping those that
    /// failed within [`SKIP_FAILED_FOR`].
    fn order(&self) -> Vec<(usize, String)> {
        let s = self.lock();
        let n = s.addrs.len();
        (0..n)
            .map(|i| (s.current + i) % n)
            .filter(|j| {
                s.failed
                    .get(*j)
                    .copied()
                    .flatten()
                    .is_none_or(|t| t.elapsed() >= SKIP_FAILED_FOR)
            })
            .map(|j| (j, s.addrs[j].clone()))
            .collect()
    }

    /// Runs `attempt` on observers until one answers. `None`: no observer could (the caller
    /// asks the active). `Some(Err(_))`: an observer gave a definite refusal (e.g. `NotFound`).
    /// On success, returns the answer and the observer's address.
    pub async fn call<T, F, Fut>(
        &self,
        targets: &Targets,
        attempt_timeout: Duration,
        mut attempt: F,
    ) -> Option<Result<(T, String), ClientError>>
    where
        F: FnMut(Rpc) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        if self.needs_refresh() {
            self.refresh(targets, attempt_timeout).await;
        }
        for (index, addr) in self.order() {
            let channel = match targets.channel(&addr) {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            let why = match tokio::time::timeout(attempt_timeout, attempt(channel)).await {
                Ok(Ok(v)) => {
                    self.lock().current = index;
                    return Some(Ok((v, addr)));
                }
                Ok(Err(status)) => match classify(status) {
                    Next::Fail(e) => {
                        self.lock().current = index;
                        return Some(Err(e));
                    }
                    Next::Redirect(to) => format!("not an observer (active is {to})"),
                    Next::Rotate(why) => why,
                },
                Err(_) => format!("no answer within {attempt_timeout:?}"),
            };
            tracing::debug!(observer = %addr, %why, "trying the next observer");
            let mut s = self.lock();
            if let Some(f) = s.failed.get_mut(index) {
                *f = Some(Instant::now());
            }
            if !s.addrs.is_empty() {
                s.current = (index + 1) % s.addrs.len();
            }
        }
        let mut s = self.lock();
        // Every observer failed (or is being skipped): look again before long. (None at all
        // is no failure: a cluster without observers, or a router, is asked again on the
        // regular refresh, not before every read.)
        if !s.failed.is_empty() && s.failed.iter().all(Option::is_some) {
            s.stale = true;
        }
        None
    }
}
