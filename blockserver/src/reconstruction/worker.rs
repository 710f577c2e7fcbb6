//! Runs reconstruction tasks: one tokio task each, holding its xmits weight in a guard for
//! its whole life, reporting its outcome to the metaserver that sent it.
//!
//! An erasure-coded block is rebuilt a stripe at a time: the cell of each of the k sources
//! for that stripe is read (in parallel, each read charged to the budgets of its source's
//! rack), the lost cell decoded, and appended to the new block; memory holds k+1 cells. A
//! replica, or an erasure-coded block copied from a server being drained, is copied in 1 MiB
//! pieces. The new block is finalized (fsynced, renamed) and the
//! volume's event sends the incremental report; on any failure nothing becomes visible.
//!
//! Tasks and partial cells are `raftfs_core::reconstruction`'s types, validated once where
//! they arrive (`crate::convert`); the peers' wire is `crate::peers`'s; every failure is a
//! [`TaskError`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use raftfs_codec::ErasureCodec;
use raftfs_core::block_token::BlockToken;
use raftfs_core::id::TaskId;
use raftfs_core::layout::Layout;
use raftfs_core::namespace::blocks::GroupId;
use raftfs_core::reconstruction::{
    BlockSource, InvalidTask, PartialCell, ReconstructionTask, TaskOutcome,
};

use super::budget::Budgets;
use super::xmits::Xmits;
use crate::error::{BlockError, TaskError};
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::volumes::Volumes;

/// Bytes per read of a replica copy.
const PIECE: u64 = 1 << 20;

/// Where a task's outcome goes: the outbox of the metaserver link that sent it.
pub type Outbox = Arc<Mutex<Vec<TaskOutcome>>>;

/// The block a task rebuilds: (pool, group, index). Group ids, and task ids, are scoped by
/// pool: two nameservices may rebuild their group 7 at once, and number their tasks alike.
type BlockKey = (u64, GroupId, u32);

/// A running task: how to stop it, and the block it rebuilds.
type Running = (tokio::task::AbortHandle, BlockKey);

/// Clears a task's bookkeeping when its future is dropped, however it ends.
struct Cleanup {
    worker: Arc<Worker>,
    key: BlockKey,
    task_id: (u64, TaskId),
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Only its own entries: a cancelled task's future may be dropped after a task that
        // rebuilds the same block took its place (in the same reply as the cancellation).
        let mut running = lock(&self.worker.running);
        if running.get(&self.key) == Some(&self.task_id) {
            running.remove(&self.key);
        }
        drop(running);
        let mut handles = lock(&self.worker.handles);
        if handles
            .get(&self.task_id)
            .is_some_and(|(_, key)| *key == self.key)
        {
            handles.remove(&self.task_id);
        }
    }
}

/// A task this server runs now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunningTask {
    pub pool: u64,
    pub task: u64,
    pub group: u64,
    pub index: u32,
}

/// The reconstruction worker of one blockserver.
#[derive(Debug)]
pub struct Worker {
    pub xmits: Arc<Xmits>,
    pub budgets: Arc<Budgets>,
    volumes: Arc<Volumes>,
    metrics: Arc<Metrics>,
    rack: String,
    /// The channels to the sources, shared by every task's reads.
    peers: Peers,
    /// The blocks being rebuilt, and by which task: as many as the tasks running.
    running: Mutex<HashMap<BlockKey, (u64, TaskId)>>,
    /// (pool, task id) -> its tokio task and block, for cancellation.
    handles: Mutex<HashMap<(u64, TaskId), Running>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    pub fn new(
        volumes: Arc<Volumes>,
        metrics: Arc<Metrics>,
        rack: String,
        dialer: raftfs_runtime::Dialer,
    ) -> Arc<Self> {
        Arc::new(Self {
            xmits: Xmits::new(),
            budgets: Arc::new(Budgets::default()),
            volumes,
            metrics,
            rack,
            peers: Peers::new(dialer),
            running: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// The tasks running now, by pool, for the operator pages.
    pub fn running_tasks(&self) -> Vec<RunningTask> {
        let mut tasks: Vec<RunningTask> = lock(&self.running)
            .iter()
            .map(|((pool, group, index), (_, task))| RunningTask {
                pool: *pool,
                task: task.get(),
                group: group.get(),
                index: *index,
            })
            .collect();
        tasks.sort_by_key(|t| (t.pool, t.task));
        tasks
    }

    /// This server's rack, as its tasks' reads are counted.
    pub fn rack(&self) -> &str {
        &self.rack
    }

    /// Starts `task`, sent by the active of pool `pool`'s nameservice (unless the same block
    /// is being rebuilt already); its outcome goes to `outbox`.
    /// `token`: the task's block access token, for its reads of the sources.
    pub fn spawn(
        self: &Arc<Self>,
        task: ReconstructionTask,
        token: Vec<u8>,
        pool: u64,
        outbox: Outbox,
    ) {
        let key = (pool, task.group, task.index);
        let task_id = (pool, task.id);
        {
            let mut running = lock(&self.running);
            if running.contains_key(&key) {
                return;
            }
            // Each active sends at most `max-streams - xmits` tasks, and a task weighs at
            // least 1, so one active never makes a server run more than `max-streams` tasks;
            // two actives answering in the same second could. Past the lowest limit any
            // pool's active sent, a task is refused (DESIGN §10).
            if let Some(limit) = self.budgets.max_tasks()
                && running.len() >= limit as usize
            {
                let busy = TaskError::Busy {
                    running: running.len(),
                    limit,
                };
                drop(running);
                self.fail_at_once(task.id, task.group, task.index, busy, &outbox);
                return;
            }
            running.insert(key, task_id);
        }
        // The weight is held from here until the task's future is gone, whatever ends it.
        let guard = self.xmits.take(task.weight);
        let worker = self.clone();
        self.metrics.reconstruction_task("started");
        // Whatever ends the task (its end, an error, a panic, an abort) drops this, which
        // clears its bookkeeping; the xmits guard inside gives its weight back the same way.
        let cleanup = Cleanup {
            worker: self.clone(),
            key,
            task_id,
        };
        let handle = tokio::spawn(async move {
            let _guard = guard;
            let _cleanup = cleanup;
            let r = worker.run(&task, &token, pool).await;
            match &r {
                Ok(len) => {
                    worker.metrics.reconstruction_task("finished");
                    tracing::info!(
                        group = %task.group,
                        index = task.index,
                        bytes = len,
                        "internal block rebuilt"
                    );
                }
                Err(e) => {
                    worker.metrics.reconstruction_task("failed");
                    tracing::warn!(group = %task.group, index = task.index, error = %e, "reconstruction failed");
                }
            }
            lock(&outbox).push(TaskOutcome {
                task_id: task.id,
                group: task.group,
                index: task.index,
                error: r.err().map(|e| e.to_string()),
            });
        });
        lock(&self.handles).insert(task_id, (handle.abort_handle(), key));
        if handle.is_finished() {
            // It ended before its handle was filed: nothing left to cancel.
            lock(&self.handles).remove(&task_id);
        }
    }

    /// A task that could not be taken as sent ([`crate::convert::reconstruction_task`]
    /// refused it): it fails at once, and the active hears so with the next heartbeat and
    /// reschedules the block, as it would had the task failed running.
    pub fn refuse(
        &self,
        task_id: TaskId,
        group: GroupId,
        index: u32,
        why: InvalidTask,
        outbox: &Outbox,
    ) {
        self.fail_at_once(task_id, group, index, TaskError::BadTask(why), outbox);
    }

    /// A task that fails before it starts: the active hears so with the next heartbeat.
    fn fail_at_once(
        &self,
        task_id: TaskId,
        group: GroupId,
        index: u32,
        error: TaskError,
        outbox: &Outbox,
    ) {
        self.metrics.reconstruction_task("started");
        self.metrics.reconstruction_task("failed");
        tracing::warn!(%group, index, %error, "reconstruction task refused");
        lock(outbox).push(TaskOutcome {
            task_id,
            group,
            index,
            error: Some(error.to_string()),
        });
    }

    /// Stops the tasks the active of pool `pool`'s nameservice cancelled (their group was
    /// deleted, or they timed out).
    pub fn cancel(&self, pool: u64, task_ids: &[TaskId]) {
        let mut handles = lock(&self.handles);
        for id in task_ids {
            if let Some((h, key)) = handles.remove(&(pool, *id)) {
                tracing::info!(task = %id, "reconstruction task cancelled");
                self.metrics.reconstruction_task("cancelled");
                h.abort();
                // The block is free for a new task now (a rescheduled one may come in the
                // same reply), even before the aborted future is dropped.
                let mut running = lock(&self.running);
                if running.get(&key) == Some(&(pool, *id)) {
                    running.remove(&key);
                }
            }
        }
    }

    /// `len` bytes of `src` at `offset`, charged to the budgets of its rack; known zeros are
    /// never read.
    async fn read(
        &self,
        src: &BlockSource,
        group: GroupId,
        offset: u64,
        len: u64,
        token: &[u8],
    ) -> Result<Vec<u8>, TaskError> {
        if src.rack != self.rack {
            self.budgets.read(len, &src.rack).await;
        } else {
            self.budgets.read(len, "").await;
        }
        let out = self
            .peers
            .read(&src.addr, group, src.index, offset, len, token)
            .await?;
        self.metrics.reconstruction_read(&src.rack, &self.rack, len);
        Ok(out)
    }

    /// Rebuilds the task's block; returns its length. The task was validated when it
    /// arrived ([`crate::convert::reconstruction_task`]): its block and reads are bounded.
    /// The new block is stamped with the generation the task's token names (the group's
    /// when the active scheduled it): the sources it reads are served only at that
    /// generation or newer.
    /// The token must name the pool of the nameservice that sent the task: one nameservice's
    /// work never writes into another's pool.
    async fn run(
        &self,
        task: &ReconstructionTask,
        token: &[u8],
        pool: u64,
    ) -> Result<u64, TaskError> {
        let claims = BlockToken::decode(token)
            .map_err(|e| TaskError::Store(BlockError::Token(e)))?
            .claims;
        if claims.pool != pool {
            return Err(TaskError::Store(BlockError::Token(
                raftfs_core::block_token::TokenError::WrongBlock,
            )));
        }
        let id = crate::convert::block_id(pool, task.group.into(), task.index)?;
        let generation = claims.generation;
        let volumes = self.volumes.clone();
        let mut writer =
            tokio::task::spawn_blocking(move || volumes.create(id, generation)).await??;
        let len = task
            .policy
            .block_len(task.group_length, task.index as usize);
        let mut at = 0u64;
        let codec: Option<Arc<dyn ErasureCodec>> =
            raftfs_codec::for_policy(&task.policy)?.map(Arc::from);
        while at < len {
            // A block copied from a copy of itself (a replica; an erasure-coded block on a
            // server being drained) is read as it is; any other is decoded.
            let chunk = match (&task.policy.layout(), &codec) {
                (Some(layout), Some(codec)) if !task.is_copy() => {
                    self.decode_stripe(task, *layout, codec.clone(), at, token)
                        .await?
                }
                _ => {
                    let n = PIECE.min(len - at);
                    let src = task
                        .sources
                        .first()
                        .ok_or_else(|| InvalidTask::SourceCount {
                            policy: task.policy.to_string(),
                            have: 0,
                            need: 1,
                        })?;
                    self.read(src, task.group, at, n, token).await?
                }
            };
            if chunk.is_empty() {
                return Err(TaskError::NoProgress { at, len });
            }
            self.budgets.write(chunk.len() as u64).await;
            at += chunk.len() as u64;
            let (w, r) = tokio::task::spawn_blocking(move || {
                let r = writer.write(&chunk);
                (writer, r)
            })
            .await?;
            writer = w;
            r?;
        }
        let written = tokio::task::spawn_blocking(move || writer.finalize()).await??;
        self.metrics.reconstruction_written(written);
        Ok(written)
    }

    /// The lost block's cell in the stripe that starts at block offset `at`.
    ///
    /// Without `aggregate`, every source's cell is read here. With it, the sources of each
    /// other rack that has two or more are combined there by one of them (`Partial`), so one
    /// cell per rack crosses instead of one per source; the parts XOR to the lost cell.
    async fn decode_stripe(
        &self,
        task: &ReconstructionTask,
        layout: Layout,
        codec: Arc<dyn ErasureCodec>,
        at: u64,
        token: &[u8],
    ) -> Result<Vec<u8>, TaskError> {
        let cell = layout.stripe_data() / codec.data_cells() as u64;
        let want = layout
            .block_len(task.group_length, task.index as usize)
            .saturating_sub(at)
            .min(cell);
        let reads = task.stripe_reads(&self.rack);
        let (here, remote) = (reads.here, reads.combined);
        let mine = task.partial(at, here.into_iter().cloned().collect());
        let mine = self.partial(&mine, token);
        let theirs = remote.values().filter_map(|sources| {
            let via = *sources.first()?;
            let cell = task.partial(at, sources.iter().map(|s| (*s).clone()).collect());
            Some(async move { (via, self.remote_partial(via, &cell, token).await) })
        });
        let (mine, theirs) = tokio::join!(mine, futures::future::join_all(theirs));
        let mut out = mine?;
        for (via, part) in theirs {
            let part = part?;
            if part.len() != out.len() {
                return Err(TaskError::Length {
                    addr: via.addr.clone(),
                    got: part.len() as u64,
                    want: out.len() as u64,
                });
            }
            for (o, p) in out.iter_mut().zip(part) {
                *o ^= p;
            }
        }
        out.truncate(usize::try_from(want).unwrap_or(0));
        Ok(out)
    }

    /// Asks `via` (a source server in another rack) for its rack's part of a lost cell.
    async fn remote_partial(
        &self,
        via: &BlockSource,
        cell: &PartialCell,
        token: &[u8],
    ) -> Result<Vec<u8>, TaskError> {
        let data = self.peers.partial(&via.addr, cell, token).await?;
        // One cell crossed from that rack: counted and charged like a read from it.
        self.budgets.read(data.len() as u64, &via.rack).await;
        self.metrics
            .reconstruction_read(&via.rack, &self.rack, data.len() as u64);
        Ok(data)
    }

    /// The part of a lost cell that `req.local` contributes: the decode over the k sources of
    /// `req.all` with every other source's cell as zeros (as long as the stripe's cell 0).
    /// `req` was validated where it was made (a validated task's, or
    /// [`crate::convert::partial_cell`] for a peer's): k sources within the width; its
    /// buffers are sized by [`PartialCell::plan`] (at most a cell each) before any is made.
    /// `token` is the one the cell was asked with: the local sources are read with it.
    pub async fn partial(&self, req: &PartialCell, token: &[u8]) -> Result<Vec<u8>, TaskError> {
        let (Ok(plan), Some(codec)) = (req.plan(), raftfs_codec::for_policy(&req.policy)?) else {
            return Err(InvalidTask::NotErasureCoded(req.policy.to_string()).into());
        };
        let width = req.policy.width();
        let plen = usize::try_from(plan.cell_len).unwrap_or(0);
        let reads = req.local.iter().zip(&plan.reads).map(|(s, &n)| async move {
            let bytes = if n == 0 {
                Vec::new()
            } else {
                self.read(s, req.group, req.offset, n, token).await?
            };
            Ok::<_, TaskError>((s.index as usize, bytes))
        });
        let mut cells: Vec<Option<Vec<u8>>> = vec![None; width];
        for i in &req.all {
            if let Some(c) = cells.get_mut(*i as usize) {
                *c = Some(vec![0u8; plen]);
            }
        }
        for r in futures::future::join_all(reads).await {
            let (i, mut bytes) = r?;
            bytes.resize(plen, 0);
            if let Some(c) = cells.get_mut(i) {
                *c = Some(bytes);
            }
        }
        let lost = req.lost as usize;
        let codec: Arc<dyn ErasureCodec> = Arc::from(codec);
        tokio::task::spawn_blocking(move || {
            let refs: Vec<Option<&[u8]>> = cells.iter().map(|c| c.as_deref()).collect();
            let mut out = vec![0u8; plen];
            codec.decode(&refs, &[lost], &mut [out.as_mut_slice()])?;
            Ok::<_, TaskError>(out)
        })
        .await?
    }
}
