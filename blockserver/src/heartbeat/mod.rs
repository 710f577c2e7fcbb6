//! Registration, heartbeats and block reports (DESIGN §6): one independent task per
//! metaserver, so that a metaserver that is down or slow delays nobody else, and the data
//! service runs whatever the metaservers do.
//!
//! A task's life: register (retrying with backoff until it is accepted), send a full block
//! report, then heartbeat every `heartbeat-ms`. Every block finalized or deleted is sent as an
//! incremental report within [`BATCH_WINDOW`] (changes arriving meanwhile go in the same
//! RPC); a report that fails stays pending and is retried with the next heartbeat. A full
//! report goes out every `full-report-secs`, when a volume fails, and when the task fell so
//! far behind that it lost block events. A metaserver that does not know this node (it
//! restarted) says so (`reregister`, or `UNKNOWN_NODE`), and the task starts over.
//!
//! The full report is listed only after the pending changes are dropped: every change from
//! before the listing is in it, every change after it arrives as an event and follows it
//! (a change in between is in both, which is harmless), so a metaserver never ends up with a
//! block set older than what it was told.

pub mod report;

use raftfs_core::id::{GroupId, TaskId};
use std::sync::Arc;
use std::time::Duration;

use raftfs_proto as pb;
use raftfs_proto::block_servers_client::BlockServersClient;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tonic::transport::Channel;

use crate::convert;
use crate::metaservers::Metaservers;
use crate::metrics::Metrics;
use crate::pools::Pool;
use crate::reconstruction::Worker;
use crate::reconstruction::worker::Outbox;
use crate::store::Generation;
use crate::tokens::{Fence, Keys};
use crate::volumes::{BlockEvent, Deleted, Volumes};
use report::Pending;

/// How long the first of a burst of block changes waits for the rest before the incremental
/// report goes out.
pub const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// Registration retries start at this interval and double up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What every task needs to know about this server.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: u64,
    /// The address clients and metaservers reach this server at.
    pub addr: String,
    pub rack: String,
    pub heartbeat: Duration,
    pub full_report_period: Duration,
    pub report_split_blocks: usize,
}

/// Shared by the tasks of one nameservice's members.
#[derive(Debug)]
struct Ctx {
    node: NodeInfo,
    /// The nameservice's pool: its members' orders touch it alone, reports list it alone.
    pool: Pool,
    volumes: Arc<Volumes>,
    metrics: Arc<Metrics>,
    worker: Arc<Worker>,
    keys: Arc<Keys>,
    /// The highest term any member of this nameservice named: orders count only from its
    /// active (terms of different nameservices are unrelated).
    fence: Fence,
}

/// Starts one task per metaserver, sharing one context per nameservice; they end when
/// `shutdown` turns true (or its sender goes).
pub fn spawn(
    node: NodeInfo,
    metaservers: &Metaservers,
    volumes: Arc<Volumes>,
    metrics: Arc<Metrics>,
    worker: Arc<Worker>,
    keys: Arc<Keys>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut contexts: Vec<Arc<Ctx>> = Vec::new();
    metaservers
        .links()
        .iter()
        .map(|link| {
            let ctx = match contexts.iter().find(|c| c.pool == link.pool) {
                Some(ctx) => ctx.clone(),
                None => {
                    let ctx = Arc::new(Ctx {
                        node: node.clone(),
                        pool: link.pool.clone(),
                        volumes: volumes.clone(),
                        metrics: metrics.clone(),
                        worker: worker.clone(),
                        keys: keys.clone(),
                        fence: Fence::default(),
                    });
                    contexts.push(ctx.clone());
                    ctx
                }
            };
            // Subscribed before the first registration: no change can fall between the first
            // full report's listing and the events that follow it.
            let events = ctx.volumes.subscribe();
            let mut task = Task {
                ctx: ctx.clone(),
                client: link.block_servers(),
                events,
                shutdown: shutdown.clone(),
                pending: Pending::default(),
                outbox: Outbox::default(),
            };
            let span = tracing::info_span!("metaserver", addr = %link.addr, pool = %link.pool);
            tokio::spawn(tracing::Instrument::instrument(
                async move { task.run().await },
                span,
            ))
        })
        .collect()
}

/// Why a registered session ended.
#[derive(Debug)]
enum SessionEnd {
    /// The metaserver no longer knows this node: register again.
    Reregister,
    /// Shutting down.
    Shutdown,
}

/// The outcome of an RPC to the metaserver.
#[derive(Debug)]
enum Sent {
    Done,
    /// The metaserver does not know this node.
    Reregister,
    /// It failed for another reason (down, unreachable, refused): try again later.
    Failed(tonic::Status),
}

impl Sent {
    fn from_status(status: tonic::Status) -> Self {
        let unknown =
            pb::detail_of(&status).is_some_and(|d| d.kind == pb::ErrorKind::UnknownNode as i32);
        if unknown {
            Self::Reregister
        } else {
            Self::Failed(status)
        }
    }
}

struct Task {
    ctx: Arc<Ctx>,
    client: BlockServersClient<Channel>,
    events: broadcast::Receiver<BlockEvent>,
    shutdown: watch::Receiver<bool>,
    pending: Pending,
    /// Outcomes of the reconstruction tasks this metaserver sent, for the next heartbeat.
    outbox: Outbox,
}

impl Task {
    async fn run(&mut self) {
        loop {
            if !self.register().await {
                return;
            }
            match self.session().await {
                SessionEnd::Reregister => {
                    tracing::info!("metaserver does not know this node: registering again");
                }
                SessionEnd::Shutdown => return,
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps for `d`; false if shutdown came first.
    async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopping(),
            _ = self.shutdown.changed() => false,
        }
    }

    async fn storage(&self) -> pb::StorageReport {
        let (volumes, pool) = (self.ctx.volumes.clone(), self.ctx.pool.id);
        let (s, pool_used) =
            tokio::task::spawn_blocking(move || (volumes.storage(), volumes.pool_used(pool)))
                .await
                .unwrap_or_default();
        pb::StorageReport {
            pool_used,
            capacity: s.capacity,
            used: s.used,
            available: s.available,
            failed_volumes: s.failed_volumes,
            xmits_in_progress: self.ctx.worker.xmits.in_progress(),
            volumes: s.volumes,
        }
    }

    /// Registers, retrying with backoff until the metaserver accepts; false on shutdown.
    async fn register(&mut self) -> bool {
        let mut backoff = FIRST_BACKOFF;
        let mut failures = 0u64;
        loop {
            if self.stopping() {
                return false;
            }
            let ours = self.ctx.pool.wire_name();
            let request = pb::RegisterRequest {
                node_id: self.ctx.node.id,
                addr: self.ctx.node.addr.clone(),
                rack: self.ctx.node.rack.clone(),
                storage: Some(self.storage().await),
                nameservice: ours.to_owned(),
            };
            let r = self.client.register(request).await;
            self.ctx.metrics.observe_meta_rpc("register", r.is_ok());
            match r {
                Ok(reply) if reply.get_ref().nameservice == ours => {
                    tracing::info!(metaserver_id = reply.get_ref().metaserver_id, "registered");
                    return true;
                }
                // A member of another nameservice (or of before federation, for a named
                // pool) took the registration: no session, or the pools would mix.
                Ok(reply) => {
                    failures += 1;
                    if failures % 20 == 1 {
                        tracing::error!(
                            theirs = %reply.get_ref().nameservice,
                            "this metaserver serves another nameservice than the configured one"
                        );
                    }
                }
                Err(e) => {
                    failures += 1;
                    // The first failure and then one in 20 at warn; a metaserver that is not up
                    // yet should not flood the log.
                    if failures % 20 == 1 {
                        tracing::warn!(error = %e, failures, "registration failed; retrying");
                    } else {
                        tracing::debug!(error = %e, failures, "registration failed; retrying");
                    }
                }
            }
            if !self.sleep(backoff).await {
                return false;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Heartbeats and reports until the metaserver forgets this node or shutdown.
    async fn session(&mut self) -> SessionEnd {
        let period = self.ctx.node.heartbeat;
        let mut heartbeat = tokio::time::interval(period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut need_full = true;
        let mut full_retry_at = Instant::now();
        let mut next_full = Instant::now() + self.ctx.node.full_report_period;
        // After a failed incremental report, new changes wait for the next heartbeat rather
        // than each trying an unreachable metaserver again.
        let mut incremental_after = Instant::now();
        loop {
            if self.stopping() {
                return SessionEnd::Shutdown;
            }
            if need_full && Instant::now() >= full_retry_at {
                match self.full_report().await {
                    Sent::Done => {
                        need_full = false;
                        next_full = Instant::now() + self.ctx.node.full_report_period;
                    }
                    Sent::Reregister => return SessionEnd::Reregister,
                    Sent::Failed(e) => {
                        tracing::warn!(error = %e, "full block report failed; retrying");
                        full_retry_at = Instant::now() + period;
                    }
                }
            }
            tokio::select! {
                _ = self.shutdown.changed() => return SessionEnd::Shutdown,
                _ = heartbeat.tick() => {
                    if let Sent::Reregister = self.heartbeat().await {
                        return SessionEnd::Reregister;
                    }
                    if !need_full && !self.pending.is_empty() {
                        match self.incremental_report().await {
                            Sent::Done => {}
                            Sent::Reregister => return SessionEnd::Reregister,
                            Sent::Failed(_) => incremental_after = Instant::now() + period,
                        }
                    }
                }
                event = self.events.recv() => {
                    match event {
                        // Another pool's news: not this nameservice's business, and no
                        // reason to wait for a batch or send a report.
                        Ok(e) if !self.concerns(&e) => continue,
                        Ok(e) => need_full |= !self.note(e),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(lost = n, "fell behind on block changes: full report");
                            need_full = true;
                        }
                        Err(broadcast::error::RecvError::Closed) => return SessionEnd::Shutdown,
                    }
                    if !need_full {
                        // Let the rest of a burst join this report.
                        tokio::time::sleep(BATCH_WINDOW).await;
                        need_full |= !self.drain_events();
                    }
                    if !need_full && !self.pending.is_empty() && Instant::now() >= incremental_after {
                        match self.incremental_report().await {
                            Sent::Done => {}
                            Sent::Reregister => return SessionEnd::Reregister,
                            Sent::Failed(_) => incremental_after = Instant::now() + period,
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_full), if !need_full => need_full = true,
                _ = tokio::time::sleep_until(full_retry_at), if need_full => {}
            }
        }
    }

    /// Takes an event of this nameservice's pool into `pending` (others are not its
    /// business); false if it calls for a full report.
    fn note(&mut self, event: BlockEvent) -> bool {
        if !self.concerns(&event) {
            return true;
        }
        self.pending.note(event)
    }

    /// Whether `event` is about this nameservice's pool (a volume's failure is every pool's).
    fn concerns(&self, event: &BlockEvent) -> bool {
        event.pool().is_none_or(|p| p == self.ctx.pool.id)
    }

    /// Moves every queued event into `pending`; false if one calls for a full report.
    fn drain_events(&mut self) -> bool {
        let mut fine = true;
        loop {
            match self.events.try_recv() {
                Ok(e) => fine &= self.note(e),
                Err(broadcast::error::TryRecvError::Lagged(_)) => fine = false,
                Err(_) => return fine,
            }
        }
    }

    async fn heartbeat(&mut self) -> Sent {
        let finished = std::mem::take(&mut *self.outbox.lock().unwrap_or_else(|p| p.into_inner()));
        let request = pb::HeartbeatRequest {
            node_id: self.ctx.node.id,
            storage: Some(self.storage().await),
            finished: finished.iter().map(convert::task_outcome).collect(),
            reconstruction_read: self
                .ctx
                .metrics
                .rebuild_reads()
                .into_iter()
                .map(|(rack, bytes)| pb::RackBytes { rack, bytes })
                .collect(),
        };
        let r = self.client.heartbeat(request).await;
        self.ctx.metrics.observe_meta_rpc("heartbeat", r.is_ok());
        let reply = match r {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                // Not delivered: the outcomes go with the next heartbeat.
                self.outbox
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(finished);
                let sent = Sent::from_status(status);
                if let Sent::Failed(e) = &sent {
                    tracing::debug!(error = %e, "heartbeat failed");
                }
                return sent;
            }
        };
        let known = self.ctx.keys.learn(self.ctx.pool.id, &reply.keys);
        self.ctx.metrics.set_block_keys(known);
        if !self.ctx.fence.admits(reply.term, reply.active) {
            self.ignore_orders(&reply);
        } else {
            self.carry_out(reply.delete, reply.throttle, &reply.cancel, reply.tasks)
                .await;
        }
        if reply.reregister {
            Sent::Reregister
        } else {
            Sent::Done
        }
    }

    /// Carries out what the active of the highest term sent: deletions, its budgets,
    /// cancellations, then new tasks (a rescheduled one may follow the cancellation of its
    /// predecessor in the same reply).
    async fn carry_out(
        &self,
        delete: Vec<pb::ReportedBlock>,
        throttle: Option<pb::Throttle>,
        cancel: &[u64],
        tasks: Vec<pb::ReconstructionTask>,
    ) {
        if !delete.is_empty() {
            self.delete(&delete).await;
        }
        if let Some(t) = throttle {
            let pool = self.ctx.pool.id;
            self.ctx
                .worker
                .budgets
                .update_from(pool, &convert::throttle(t));
        }
        self.ctx
            .worker
            .cancel(self.ctx.pool.id, &convert::task_ids(cancel));
        for mut task in tasks {
            let (id, group, index) = (TaskId(task.task_id), GroupId(task.group), task.index);
            let token = std::mem::take(&mut task.token);
            match convert::reconstruction_task(task) {
                Ok(task) => {
                    let pool = self.ctx.pool.id;
                    self.ctx
                        .worker
                        .spawn(task, token, pool, self.outbox.clone());
                }
                Err(why) => self.ctx.worker.refuse(id, group, index, why, &self.outbox),
            }
        }
    }

    /// A reply from a metaserver that is not the active of the highest term seen: its
    /// orders (a deposed active's queued deletions and work) are dropped and counted.
    fn ignore_orders(&self, reply: &pb::HeartbeatResponse) {
        let orders = [
            ("delete", reply.delete.len()),
            ("task", reply.tasks.len()),
            ("cancel", reply.cancel.len()),
        ];
        for (kind, n) in orders {
            if n > 0 {
                tracing::warn!(
                    kind,
                    n,
                    term = reply.term,
                    highest = self.ctx.fence.highest(),
                    "orders from a metaserver that is not the active of the highest term: ignored"
                );
                self.ctx.metrics.fenced(kind, n);
            }
        }
    }

    /// Deletes blocks the metaserver no longer wants; each deletion comes back as an event
    /// and is reported removed (to every metaserver).
    /// A deletion names the generation the metaserver saw the copy at: a copy restamped
    /// newer since is kept (0, from a metaserver of before generation stamps: any).
    async fn delete(&self, blocks: &[pb::ReportedBlock]) {
        let ids: Vec<_> = blocks
            .iter()
            .filter_map(
                |b| match convert::block_id(self.ctx.pool.id, b.group, b.index) {
                    Ok(id) => Some((id, Some(Generation(b.generation)).filter(|g| g.get() > 0))),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a deletion");
                        None
                    }
                },
            )
            .collect();
        let volumes = self.ctx.volumes.clone();
        let done = tokio::task::spawn_blocking(move || {
            for (id, up_to) in ids {
                match volumes.delete_up_to(id, up_to) {
                    Ok(Deleted::Kept) => {
                        tracing::info!(block = %id, ?up_to, "deletion of an older stamp: kept");
                    }
                    Ok(_) => tracing::debug!(block = %id, "deleted"),
                    Err(e) => tracing::warn!(block = %id, error = %e, "deletion failed"),
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "deletion worker failed");
        }
    }

    /// Sends a full report in parts; every pending change is in it.
    async fn full_report(&mut self) -> Sent {
        self.drain_events();
        self.pending.clear();
        let (volumes, pool) = (self.ctx.volumes.clone(), self.ctx.pool.id);
        let blocks = match tokio::task::spawn_blocking(move || volumes.list_pool(pool)).await {
            Ok(b) => b,
            Err(e) => return Sent::Failed(tonic::Status::internal(e.to_string())),
        };
        let report_id = report::next_report_id();
        let parts = report::split_full_report(
            self.ctx.node.id,
            report_id,
            &blocks,
            self.ctx.node.report_split_blocks,
        );
        let n = parts.len();
        for part in parts {
            let r = self.client.block_report(part).await;
            self.ctx.metrics.observe_meta_rpc("full_report", r.is_ok());
            match r {
                Ok(reply) if reply.get_ref().reregister => return Sent::Reregister,
                Ok(_) => {}
                Err(status) => return Sent::from_status(status),
            }
        }
        tracing::info!(
            blocks = blocks.len(),
            parts = n,
            report_id,
            "full block report sent"
        );
        Sent::Done
    }

    /// Sends the pending changes; they stay pending unless the metaserver took them.
    async fn incremental_report(&mut self) -> Sent {
        let request = self.pending.request(self.ctx.node.id);
        let r = self.client.block_report(request).await;
        self.ctx
            .metrics
            .observe_meta_rpc("incremental_report", r.is_ok());
        match r {
            Ok(reply) if reply.get_ref().reregister => Sent::Reregister,
            Ok(_) => {
                self.pending.clear();
                Sent::Done
            }
            Err(status) => {
                let sent = Sent::from_status(status);
                if let Sent::Failed(e) = &sent {
                    tracing::debug!(error = %e, "incremental report failed");
                }
                sent
            }
        }
    }
}
