//! Runs reconstruction tasks: one tokio task each, holding its xmits weight in a guard for
//! its whole life, reporting its outcome to the metaserver that sent it.
//!
//! An erasure-coded block is rebuilt a stripe at a time: the cell of each of the k sources
//! for that stripe is read (in parallel, each read charged to the budgets of its source's
//! rack), the lost cell decoded, and appended to the new block; memory holds k+1 cells. A
//! replica is copied in 1 MiB pieces. The new block is finalized (fsynced, renamed) and the
//! volume's event sends the incremental report; on any failure nothing becomes visible.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftfs_codec::ErasureCodec;
use raftfs_core::StoragePolicy;
use raftfs_core::layout::Layout;
use raftfs_proto as pb;
use raftfs_proto::block_data_client::BlockDataClient;
use tokio_stream::StreamExt;

use super::budget::Budgets;
use super::xmits::Xmits;
use crate::metrics::Metrics;
use crate::volumes::Volumes;

/// Bytes per read of a replica copy.
const PIECE: u64 = 1 << 20;

/// How long one source read may take before the task fails (the active reschedules it).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a task's outcome goes: the outbox of the metaserver link that sent it.
pub type Outbox = Arc<Mutex<Vec<pb::TaskOutcome>>>;

/// A running task: how to stop it, and the block (group, index) it rebuilds.
type Running = (tokio::task::AbortHandle, (u64, u32));

/// Clears a task's bookkeeping when its future is dropped, however it ends.
struct Cleanup {
    worker: Arc<Worker>,
    key: (u64, u32),
    task_id: u64,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        lock(&self.worker.running).remove(&self.key);
        lock(&self.worker.handles).remove(&self.task_id);
    }
}

/// The reconstruction worker of one blockserver.
#[derive(Debug)]
pub struct Worker {
    pub xmits: Arc<Xmits>,
    pub budgets: Arc<Budgets>,
    volumes: Arc<Volumes>,
    metrics: Arc<Metrics>,
    rack: String,
    /// One lazily connected channel per peer blockserver, shared by every task's reads.
    channels: Mutex<HashMap<String, tonic::transport::Channel>>,
    running: Mutex<HashSet<(u64, u32)>>,
    /// task id -> its tokio task and block, for cancellation.
    handles: Mutex<HashMap<u64, Running>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    pub fn new(volumes: Arc<Volumes>, metrics: Arc<Metrics>, rack: String) -> Arc<Self> {
        Arc::new(Self {
            xmits: Xmits::new(),
            budgets: Arc::new(Budgets::default()),
            volumes,
            metrics,
            rack,
            channels: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// Starts `task` (unless the same block is being rebuilt already); its outcome goes to
    /// `outbox`.
    pub fn spawn(self: &Arc<Self>, task: pb::ReconstructionTask, outbox: Outbox) {
        let key = (task.group, task.index);
        if !lock(&self.running).insert(key) {
            return;
        }
        // The weight is held from here until the task's future is gone, whatever ends it.
        let guard = self.xmits.take(task.weight);
        let worker = self.clone();
        self.metrics.reconstruction_task("started");
        let task_id = task.task_id;
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
            let r = worker.run(&task).await;
            match &r {
                Ok(len) => {
                    worker.metrics.reconstruction_task("finished");
                    tracing::info!(
                        group = task.group,
                        index = task.index,
                        bytes = len,
                        "internal block rebuilt"
                    );
                }
                Err(e) => {
                    worker.metrics.reconstruction_task("failed");
                    tracing::warn!(group = task.group, index = task.index, error = %e, "reconstruction failed");
                }
            }
            lock(&outbox).push(pb::TaskOutcome {
                task_id: task.task_id,
                group: task.group,
                index: task.index,
                ok: r.is_ok(),
                error: r.err().unwrap_or_default(),
            });
        });
        lock(&self.handles).insert(task_id, (handle.abort_handle(), key));
        if handle.is_finished() {
            // It ended before its handle was filed: nothing left to cancel.
            lock(&self.handles).remove(&task_id);
        }
    }

    /// Stops the tasks the active cancelled (their group was deleted, or they timed out).
    pub fn cancel(&self, task_ids: &[u64]) {
        let mut handles = lock(&self.handles);
        for id in task_ids {
            if let Some((h, key)) = handles.remove(id) {
                tracing::info!(task = id, "reconstruction task cancelled");
                self.metrics.reconstruction_task("cancelled");
                h.abort();
                // The block is free for a new task now (a rescheduled one may come in the
                // same reply), even before the aborted future is dropped.
                lock(&self.running).remove(&key);
            }
        }
    }

    /// A client of the blockserver at `addr` on its shared channel.
    fn peer(&self, addr: &str) -> Result<BlockDataClient<tonic::transport::Channel>, String> {
        let mut channels = lock(&self.channels);
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| format!("{addr}: {e}"))?
                    .connect_timeout(Duration::from_secs(2))
                    .tcp_nodelay(true)
                    .connect_lazy();
                channels.insert(addr.to_owned(), c.clone());
                c
            }
        };
        Ok(BlockDataClient::new(channel)
            .max_decoding_message_size(crate::service::MAX_DATA_MESSAGE))
    }

    async fn read(
        &self,
        src: &pb::BlockLocation,
        group: u64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, String> {
        if src.rack != self.rack {
            self.budgets.read(len, &src.rack).await;
        } else {
            self.budgets.read(len, "").await;
        }
        let fetch = async {
            let mut client = self.peer(&src.addr)?;
            let mut stream = client
                .read_block(pb::ReadBlockRequest {
                    block: Some(pb::BlockRef {
                        group,
                        index: src.index,
                    }),
                    offset,
                    length: len,
                })
                .await
                .map_err(|e| format!("{}: {}", src.addr, e.message()))?
                .into_inner();
            let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            while let Some(m) = stream.next().await {
                out.extend_from_slice(
                    &m.map_err(|e| format!("{}: {}", src.addr, e.message()))?
                        .data,
                );
            }
            if out.len() as u64 != len {
                return Err(format!("{}: {} of {len} bytes", src.addr, out.len()));
            }
            Ok(out)
        };
        let out = tokio::time::timeout(READ_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("{}: no answer within {READ_TIMEOUT:?}", src.addr))??;
        self.metrics.reconstruction_read(&src.rack, len);
        Ok(out)
    }

    /// Rebuilds the task's block; returns its length.
    async fn run(&self, task: &pb::ReconstructionTask) -> Result<u64, String> {
        let policy: StoragePolicy = task.policy.parse().map_err(|e| format!("{e}"))?;
        let id = crate::convert::block_id(task.group, task.index).map_err(|e| e.to_string())?;
        let volumes = self.volumes.clone();
        let mut writer = tokio::task::spawn_blocking(move || volumes.create(id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let len = policy.block_len(task.group_length, task.index as usize);
        let mut at = 0u64;
        let codec: Option<Arc<dyn ErasureCodec>> = raftfs_codec::for_policy(&policy)
            .map_err(|e| e.to_string())?
            .map(Arc::from);
        while at < len {
            let chunk = match (&policy.layout(), &codec) {
                (Some(layout), Some(codec)) => {
                    self.decode_stripe(task, *layout, codec.clone(), at).await?
                }
                _ => {
                    let n = PIECE.min(len - at);
                    let src = task
                        .sources
                        .first()
                        .ok_or("a replica copy without a source")?;
                    self.read(src, task.group, at, n).await?
                }
            };
            if chunk.is_empty() {
                return Err(format!("no progress at byte {at} of {len}"));
            }
            self.budgets.write(chunk.len() as u64).await;
            at += chunk.len() as u64;
            let (w, r) = tokio::task::spawn_blocking(move || {
                let r = writer.write(&chunk);
                (writer, r)
            })
            .await
            .map_err(|e| e.to_string())?;
            writer = w;
            r.map_err(|e| e.to_string())?;
        }
        let written = tokio::task::spawn_blocking(move || writer.finalize())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
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
        task: &pb::ReconstructionTask,
        layout: Layout,
        codec: Arc<dyn ErasureCodec>,
        at: u64,
    ) -> Result<Vec<u8>, String> {
        let cell = layout.stripe_data() / codec.data_cells() as u64;
        let want = layout
            .block_len(task.group_length, task.index as usize)
            .saturating_sub(at)
            .min(cell);
        let mut remote: HashMap<&str, Vec<&pb::BlockLocation>> = HashMap::new();
        let mut here: Vec<&pb::BlockLocation> = Vec::new();
        for s in &task.sources {
            if task.aggregate && !s.addr.is_empty() && s.rack != self.rack {
                remote.entry(s.rack.as_str()).or_default().push(s);
            } else {
                here.push(s);
            }
        }
        // A rack with a single source sends its cell as it is: no gain in combining.
        remote.retain(|_, v| {
            if v.len() < 2 {
                here.append(v);
                false
            } else {
                true
            }
        });
        let all: Vec<u32> = task.sources.iter().map(|s| s.index).collect();
        let part_request = |local: Vec<pb::BlockLocation>| pb::PartialRequest {
            group: task.group,
            policy: task.policy.clone(),
            group_length: task.group_length,
            lost: task.index,
            offset: at,
            all: all.clone(),
            local,
        };
        let my_request = part_request(here.into_iter().cloned().collect());
        let mine = self.partial(&my_request);
        let theirs = remote.values().map(|sources| {
            let req = part_request(sources.iter().map(|s| (*s).clone()).collect());
            let via = sources[0];
            async move { self.remote_partial(via, req).await }
        });
        let (mine, theirs) = tokio::join!(mine, futures::future::join_all(theirs));
        let mut out = mine?;
        for part in theirs {
            let part = part?;
            if part.len() != out.len() {
                return Err(format!(
                    "a partial cell of {} bytes, expected {}",
                    part.len(),
                    out.len()
                ));
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
        via: &pb::BlockLocation,
        req: pb::PartialRequest,
    ) -> Result<Vec<u8>, String> {
        let fetch = async {
            let mut client = self.peer(&via.addr)?;
            client
                .partial(req)
                .await
                .map(|r| r.into_inner().data)
                .map_err(|e| format!("{}: {}", via.addr, e.message()))
        };
        let data = tokio::time::timeout(READ_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("{}: no answer within {READ_TIMEOUT:?}", via.addr))??;
        // One cell crossed from that rack: counted and charged like a read from it.
        self.budgets.read(data.len() as u64, &via.rack).await;
        self.metrics
            .reconstruction_read(&via.rack, data.len() as u64);
        Ok(data)
    }

    /// The part of a lost cell that `req.local` contributes: the decode over the k sources of
    /// `req.all` with every other source's cell as zeros (as long as the stripe's cell 0).
    pub async fn partial(&self, req: &pb::PartialRequest) -> Result<Vec<u8>, String> {
        let policy: StoragePolicy = req.policy.parse().map_err(|e| format!("{e}"))?;
        let (Some(layout), Some(codec)) = (
            policy.layout(),
            raftfs_codec::for_policy(&policy).map_err(|e| e.to_string())?,
        ) else {
            return Err(format!("{}: not an erasure-coded policy", req.policy));
        };
        let width = layout.blocks();
        let cell = layout.stripe_data() / codec.data_cells() as u64;
        let len_of = |i: usize| {
            layout
                .block_len(req.group_length, i)
                .saturating_sub(req.offset)
                .min(cell)
        };
        let plen = usize::try_from(len_of(0)).unwrap_or(0);
        if req.all.len() != codec.data_cells()
            || req
                .all
                .iter()
                .any(|i| *i as usize >= width || *i == req.lost)
            || req.local.iter().any(|l| !req.all.contains(&l.index))
        {
            return Err(
                "a partial request needs k distinct sources, the local ones among them".into(),
            );
        }
        let reads = req.local.iter().map(|s| async move {
            let n = len_of(s.index as usize);
            let bytes = if n == 0 || s.addr.is_empty() {
                Vec::new()
            } else {
                self.read(s, req.group, req.offset, n).await?
            };
            Ok::<_, String>((s.index as usize, bytes))
        });
        let mut cells: Vec<Option<Vec<u8>>> = vec![None; width];
        for i in &req.all {
            cells[*i as usize] = Some(vec![0u8; plen]);
        }
        for r in futures::future::join_all(reads).await {
            let (i, mut bytes) = r?;
            bytes.resize(plen, 0);
            cells[i] = Some(bytes);
        }
        let lost = req.lost as usize;
        let codec: Arc<dyn ErasureCodec> = Arc::from(codec);
        tokio::task::spawn_blocking(move || {
            let refs: Vec<Option<&[u8]>> = cells.iter().map(|c| c.as_deref()).collect();
            let mut out = vec![0u8; plen];
            codec
                .decode(&refs, &[lost], &mut [out.as_mut_slice()])
                .map_err(|e| e.to_string())?;
            Ok(out)
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
