//! A blockserver in this process on a real TCP port, spoken to through real gRPC; and a
//! recording metaserver for the blockserver side of registration and reports.
//!
//! The recording metaserver keeps what a metaserver's registry keeps (who registered, the
//! block set from full reports assembled part by part and from incremental reports) so that
//! tests assert on what a metaserver would know, not on the order of RPCs. It can also
//! forget the node (a metaserver restart) and queue deletions for the next heartbeat reply.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use raftfs_blockserver::Config;
use raftfs_core::block_token::{BlockKey, BlockToken, Claims, Indices, Mode};
use raftfs_core::id::GroupId;
use raftfs_core::identity::{Caller, PortPolicy, Principal, Proof};
use raftfs_proto as pb;
use raftfs_proto::block_data_client::BlockDataClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Long enough for anything that should happen "soon" on a loaded machine; tests never
/// assert on how soon.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `f` until it returns `Some`, or panics after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deterministic test bytes.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 7) as u8 ^ seed)
        .collect()
}

/// The block key the recording metaserver hands out in its heartbeat replies.
pub fn test_key() -> BlockKey {
    BlockKey {
        id: 1,
        secret: [42; 32],
        created_ms: 0,
        expires_ms: u64::MAX / 2,
    }
}

/// Who the tests are on a blockserver without certificates: the simple-mode caller that
/// claims no name.
pub fn test_caller() -> Caller {
    Caller {
        principal: Principal::claimed(raftfs_runtime::ports::ANONYMOUS_USER).expect("a name"),
        proof: Proof::Claimed,
        port: PortPolicy::Plain,
    }
}

/// A token signed with [`test_key`] for `claims`.
pub fn token_for(claims: Claims) -> Vec<u8> {
    BlockToken::mint(&test_key(), claims).encode()
}

/// A token of the test caller to read and write every block of `group`, as a metaserver
/// signs for a writer.
pub fn token(group: u64) -> Vec<u8> {
    token_for(Claims::new(
        &test_caller(),
        GroupId(group),
        Indices::ALL,
        &[Mode::Read, Mode::Write],
        0,
        u64::MAX / 4,
    ))
}

/// A token of the cluster's own work on `group`, as reconstruction tasks carry.
pub fn node_token(group: u64) -> Vec<u8> {
    token_for(Claims::for_nodes(
        GroupId(group),
        &[Mode::Read],
        0,
        u64::MAX / 4,
    ))
}

/// A blockserver running in this process.
pub struct Blockserver {
    pub addr: SocketAddr,
    pub config: Config,
    _dirs: Vec<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Hands out the block keys when the test gives the server no metaserver of its own.
    _keys: Option<(RecordingMeta, oneshot::Sender<()>)>,
}

impl Blockserver {
    /// Starts one with `volumes` fresh data directories, after `tweak` adjusts its config.
    pub async fn start(volumes: usize, tweak: impl FnOnce(&mut Config)) -> Self {
        let dirs: Vec<tempfile::TempDir> = (0..volumes)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let mut config = Config {
            id: 1,
            rack: "r1".into(),
            data_dirs: dirs.iter().map(|d| d.path().join("vol")).collect(),
            heartbeat_ms: 100,
            ..Config::default()
        };
        tweak(&mut config);
        let keys = if config.metaservers.is_empty() {
            let meta = RecordingMeta::default();
            let (addr, stop) = meta.start().await;
            config.metaservers = vec![addr];
            Some((meta, stop))
        } else {
            None
        };
        let mut server = Self::run(config, dirs).await;
        server._keys = keys;
        server
    }

    async fn run(config: Config, dirs: Vec<tempfile::TempDir>) -> Self {
        let rpc = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = rpc.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let c = config.clone();
        let task = tokio::spawn(async move {
            let until = async move {
                let _ = stopped.await;
            };
            let listeners = raftfs_blockserver::server::Listeners {
                rpc: vec![rpc],
                metrics: None,
            };
            if let Err(e) = raftfs_blockserver::server::serve(c, listeners, until).await {
                panic!("blockserver failed: {e}");
            }
        });
        Self {
            addr,
            config,
            _dirs: dirs,
            stop: Some(stop),
            task: Some(task),
            _keys: None,
        }
    }

    /// Stops it and starts it again on the same volumes (on a new port), after `tweak`.
    pub async fn restart(mut self, tweak: impl FnOnce(&mut Config)) -> Self {
        self.halt().await;
        let mut config = self.config.clone();
        tweak(&mut config);
        let dirs = std::mem::take(&mut self._dirs);
        let keys = self._keys.take();
        let mut server = Self::run(config, dirs).await;
        server._keys = keys;
        server
    }

    async fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("blockserver task");
        }
    }

    /// Data directory of volume `v`.
    pub fn volume(&self, v: usize) -> &Path {
        &self.config.data_dirs[v]
    }

    /// The data file of a finalized block, whichever volume holds it.
    pub fn block_file(&self, group: u64, index: u32) -> Option<PathBuf> {
        self.config
            .data_dirs
            .iter()
            .map(|d| {
                d.join("finalized")
                    .join(format!("blk_{group:016x}_{index}"))
            })
            .find(|p| p.exists())
    }

    /// Temporary files of blocks being written, over every volume.
    pub fn temporaries(&self) -> Vec<PathBuf> {
        self.config
            .data_dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d.join("tmp")).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect()
    }

    pub async fn client(&self) -> BlockDataClient<Channel> {
        BlockDataClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
            .max_decoding_message_size(64 << 20)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.halt().await;
    }
}

impl Drop for Blockserver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The messages of a write: the block named in the first, `data` in pieces, finalize last
/// (when asked).
pub fn write_messages(
    group: u64,
    index: u32,
    data: &[u8],
    piece: usize,
    finalize: bool,
) -> Vec<pb::WriteBlockRequest> {
    let mut msgs: Vec<pb::WriteBlockRequest> = data
        .chunks(piece.max(1))
        .map(|c| pb::WriteBlockRequest {
            block: None,
            data: c.to_vec(),
            finalize: false,
            token: Vec::new(),
        })
        .collect();
    if msgs.is_empty() {
        msgs.push(pb::WriteBlockRequest::default());
    }
    msgs[0].block = Some(pb::BlockRef { group, index });
    msgs[0].token = token(group);
    if finalize && let Some(last) = msgs.last_mut() {
        last.finalize = true;
    }
    msgs
}

/// Writes a whole block; returns the length the server acknowledged.
pub async fn write(
    client: &mut BlockDataClient<Channel>,
    group: u64,
    index: u32,
    data: &[u8],
    piece: usize,
) -> Result<u64, Status> {
    let msgs = write_messages(group, index, data, piece, true);
    let r = client.write_block(tokio_stream::iter(msgs)).await?;
    Ok(r.into_inner().length)
}

/// Reads `[offset, offset+length)` (length 0: to the end), every message concatenated.
pub async fn read(
    client: &mut BlockDataClient<Channel>,
    group: u64,
    index: u32,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>, Status> {
    let mut stream = client
        .read_block(pb::ReadBlockRequest {
            block: Some(pb::BlockRef { group, index }),
            offset,
            length,
            token: token(group),
            checksums: false,
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        assert!(m.data.len() <= 1 << 20, "pieces are at most 1 MiB");
        out.extend_from_slice(&m.data);
    }
    Ok(out)
}

/// The finalized length of a block.
pub async fn info(
    client: &mut BlockDataClient<Channel>,
    group: u64,
    index: u32,
) -> Result<u64, Status> {
    Ok(client
        .block_info(pb::BlockInfoRequest {
            block: Some(pb::BlockRef { group, index }),
            token: token(group),
        })
        .await?
        .into_inner()
        .length)
}

/// The `ErrorDetail` kind of a status.
pub fn kind(status: &Status) -> pb::ErrorKind {
    pb::detail_of(status)
        .and_then(|d| pb::ErrorKind::try_from(d.kind).ok())
        .unwrap_or(pb::ErrorKind::Unspecified)
}

/// A full report being assembled.
#[derive(Debug, Default)]
struct Partial {
    report_id: u64,
    parts: u32,
    received: BTreeSet<u32>,
    blocks: Vec<(u64, u32, u64)>,
}

/// What the recording metaserver saw and knows.
#[derive(Debug, Default)]
pub struct Seen {
    pub registrations: u32,
    pub registered: bool,
    pub rack: String,
    pub addr: String,
    pub heartbeats: u32,
    pub storage: Option<pb::StorageReport>,
    /// (group, index) -> length, as a registry would hold it.
    pub blocks: BTreeMap<(u64, u32), u64>,
    /// Every full-report RPC: (report_id, part, parts, blocks in it).
    pub full_parts: Vec<(u64, u32, u32, usize)>,
    pub full_reports_completed: u32,
    pub incremental_reports: u32,
    pub corrupt: Vec<pb::ReportCorruptRequest>,
    partial: Option<Partial>,
    to_delete: Vec<pb::ReportedBlock>,
    /// Reconstruction tasks to hand out with the next heartbeat reply.
    to_run: Vec<pb::ReconstructionTask>,
    /// The budgets every heartbeat reply carries (none: none sent).
    pub throttle: Option<pb::Throttle>,
    /// The term its replies name (at least 1), and whether they say it is not the active.
    pub term: u64,
    pub deposed: bool,
    /// Outcomes of reconstruction tasks, as heartbeats delivered them.
    pub finished: Vec<pb::TaskOutcome>,
}

/// A metaserver that records the blockserver side of the protocol.
#[derive(Debug, Clone, Default)]
pub struct RecordingMeta {
    seen: Arc<Mutex<Seen>>,
}

impl RecordingMeta {
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// As after a restart: the node and its blocks are forgotten.
    pub fn forget(&self) {
        let mut s = self.seen();
        s.registered = false;
        s.blocks.clear();
        s.partial = None;
    }

    /// Hands `task` to the blockserver with the next heartbeat reply.
    pub fn queue_task(&self, task: pb::ReconstructionTask) {
        self.seen().to_run.push(task);
    }

    pub fn queue_delete(&self, group: u64, index: u32) {
        self.seen().to_delete.push(pb::ReportedBlock {
            group,
            index,
            length: 0,
            generation: 0,
        });
    }

    fn unknown() -> Status {
        pb::status_with_detail(
            tonic::Code::NotFound,
            pb::ErrorDetail {
                kind: pb::ErrorKind::UnknownNode as i32,
                message: "unknown blockserver".into(),
                ..Default::default()
            },
        )
    }

    /// Serves on `listener` until the returned sender is dropped or fires.
    pub fn serve(&self, listener: TcpListener) -> oneshot::Sender<()> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (a, b) = (self.clone(), self.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(pb::block_servers_server::BlockServersServer::new(a))
                .add_service(pb::namespace_server::NamespaceServer::new(b))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = stopped.await;
                })
                .await;
        });
        stop
    }

    /// Starts one on a fresh port; returns its address.
    pub async fn start(&self) -> (String, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        (addr, self.serve(listener))
    }
}

#[tonic::async_trait]
impl pb::block_servers_server::BlockServers for RecordingMeta {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = request.into_inner();
        let mut s = self.seen();
        s.registrations += 1;
        s.registered = true;
        s.rack = r.rack;
        s.addr = r.addr;
        s.storage = r.storage;
        Ok(Response::new(pb::RegisterResponse {
            metaserver_id: 1,
            ..Default::default()
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let mut s = self.seen();
        if !s.registered {
            return Ok(Response::new(pb::HeartbeatResponse {
                reregister: true,
                ..Default::default()
            }));
        }
        s.heartbeats += 1;
        s.storage = r.storage;
        s.finished.extend(r.finished);
        let delete = std::mem::take(&mut s.to_delete);
        let tasks = std::mem::take(&mut s.to_run);
        let key = test_key();
        Ok(Response::new(pb::HeartbeatResponse {
            reregister: false,
            delete,
            tasks,
            keys: vec![pb::BlockKey {
                id: key.id,
                secret: key.secret.to_vec(),
                created_ms: key.created_ms,
                expires_ms: key.expires_ms,
            }],
            term: s.term.max(1),
            active: !s.deposed,
            throttle: s.throttle.clone(),
            ..Default::default()
        }))
    }

    async fn block_report(
        &self,
        request: Request<pb::BlockReportRequest>,
    ) -> Result<Response<pb::BlockReportResponse>, Status> {
        let r = request.into_inner();
        let mut s = self.seen();
        if !s.registered {
            return Err(Self::unknown());
        }
        if !r.full {
            s.incremental_reports += 1;
            for b in &r.removed {
                s.blocks.remove(&(b.group, b.index));
            }
            for b in &r.blocks {
                s.blocks.insert((b.group, b.index), b.length);
            }
            return Ok(Response::new(pb::BlockReportResponse { reregister: false }));
        }
        s.full_parts
            .push((r.report_id, r.part, r.parts, r.blocks.len()));
        let fresh = !matches!(&s.partial, Some(p) if p.report_id == r.report_id);
        if fresh {
            s.partial = Some(Partial {
                report_id: r.report_id,
                parts: r.parts,
                ..Partial::default()
            });
        }
        let done = {
            let p = s.partial.as_mut().expect("partial");
            if p.received.insert(r.part) {
                p.blocks
                    .extend(r.blocks.iter().map(|b| (b.group, b.index, b.length)));
            }
            p.received.len() as u32 == p.parts
        };
        if done {
            let p = s.partial.take().expect("partial");
            s.blocks = p.blocks.into_iter().map(|(g, i, l)| ((g, i), l)).collect();
            s.full_reports_completed += 1;
        }
        Ok(Response::new(pb::BlockReportResponse { reregister: false }))
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the recording metaserver"))
}

#[tonic::async_trait]
impl pb::namespace_server::Namespace for RecordingMeta {
    async fn mutate(
        &self,
        _: Request<pb::MutateRequest>,
    ) -> Result<Response<pb::MutateResponse>, Status> {
        unimplemented()
    }
    async fn stat(
        &self,
        _: Request<pb::StatRequest>,
    ) -> Result<Response<pb::StatResponse>, Status> {
        unimplemented()
    }
    async fn list(
        &self,
        _: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        unimplemented()
    }
    async fn content_summary(
        &self,
        _: Request<pb::ContentSummaryRequest>,
    ) -> Result<Response<pb::ContentSummaryResponse>, Status> {
        unimplemented()
    }
    async fn get_xattrs(
        &self,
        _: Request<pb::GetXattrsRequest>,
    ) -> Result<Response<pb::GetXattrsResponse>, Status> {
        unimplemented()
    }
    async fn msync(
        &self,
        _: Request<pb::MsyncRequest>,
    ) -> Result<Response<pb::MsyncResponse>, Status> {
        unimplemented()
    }
    async fn get_blocks(
        &self,
        _: Request<pb::GetBlocksRequest>,
    ) -> Result<Response<pb::GetBlocksResponse>, Status> {
        unimplemented()
    }
    async fn report_corrupt(
        &self,
        request: Request<pb::ReportCorruptRequest>,
    ) -> Result<Response<pb::ReportCorruptResponse>, Status> {
        self.seen().corrupt.push(request.into_inner());
        Ok(Response::new(pb::ReportCorruptResponse {}))
    }
    async fn fsck(
        &self,
        _: Request<pb::FsckRequest>,
    ) -> Result<Response<pb::FsckResponse>, Status> {
        unimplemented()
    }

    async fn get_mount_table(
        &self,
        _: Request<pb::GetMountTableRequest>,
    ) -> Result<Response<pb::GetMountTableResponse>, Status> {
        unimplemented()
    }

    async fn snapshot_diff(
        &self,
        _: Request<pb::SnapshotDiffRequest>,
    ) -> Result<Response<pb::SnapshotDiffResponse>, Status> {
        unimplemented()
    }
}
