//! The [`Client`]: namespace operations with failover and state-ID tracking. One `Client`
//! value (and its clones) is one client object in the sense of DESIGN §5: it has one client
//! id, numbers its calls, and remembers the highest state ID it has seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftfs_proto as pb;
use raftfs_proto::admin_client::AdminClient;
use raftfs_proto::mutate_request::Op;
use raftfs_proto::namespace_client::NamespaceClient;

use raftfs_core::federation::MountTable;
use raftfs_core::fsck::FsckReport;
use raftfs_core::id::{BlockServerId, GroupId, MemberId};
use raftfs_core::namespace::admin_state::AdminChange;
use raftfs_core::namespace::throttle::ThrottleChange;
use raftfs_core::namespace::upgrade::UpgradeStep;

use crate::error::ClientError;
use crate::failover::{Rpc, Targets};
use crate::model::{
    self, BlockServerInfo, ClusterStatus, ContentSummary, FileStatus, ListPage, LocatedBlocks,
    LocatedGroup, Member, NodeStatus, ReconstructionStatus,
};
use crate::observers::Observers;
use crate::read_mode::{AutoMsync, ReadMode};
use crate::tls::ClientTls;

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Metaserver addresses (any of them; the client finds the active).
    pub metas: Vec<String>,
    /// How long a call keeps retrying across failovers before it gives up.
    pub failover_deadline: Duration,
    /// How long one attempt may take.
    pub rpc_timeout: Duration,
    /// The user this client claims to be on a simple-mode port, and puts on new files and
    /// directories (a port that verified a client certificate takes the name from it).
    pub user: String,
    /// TLS (the cluster's CA, and a client certificate for `mtls` ports); none: plain.
    pub tls: Option<ClientTls>,
    /// The user (with its groups) every call is made for, by a client whose certificate a
    /// proxy rule of the servers names (a WebHDFS gateway serving that user, DESIGN §9):
    /// what it creates is that user's, and the namespace's permissions are checked as that
    /// user's. None: the client's own identity.
    pub act_as: Option<raftfs_core::identity::User>,
    /// Where reads go.
    pub read_mode: ReadMode,
    /// In observer mode, when to msync on our own before a read.
    pub auto_msync: AutoMsync,
    /// How long one read attempt on an observer may take before the client tries the next
    /// one (a paused or partitioned observer): a little above the servers' read wait.
    pub observer_timeout: Duration,
    /// How long a read of one piece of an internal block may take before the reader treats
    /// the block as unavailable and reads around it (another replica, or a degraded read).
    pub block_read_timeout: Duration,
    /// How long one write to an internal block (a cell, or a replica's packet) may take
    /// before the writer gives that block up.
    pub block_write_timeout: Duration,
    /// How often an open writer renews its lease (well inside the metaservers' lease).
    pub lease_renew_interval: Duration,
    /// Block groups a reader asks for at once (HDFS's `dfs.client.read.prefetch.size`, in
    /// groups); 0: the metaserver's page (1024).
    pub block_groups_per_fetch: u32,
    /// The local address every connection (to metaservers and blockservers) is opened from;
    /// none: the system's choice. A local cluster's link proxy tells clients apart by it, so
    /// that a test can cut one client process off and not another.
    pub source_ip: Option<std::net::IpAddr>,
}

impl ClientConfig {
    pub fn new(metas: Vec<String>) -> Self {
        Self {
            metas,
            failover_deadline: Duration::from_secs(30),
            rpc_timeout: Duration::from_secs(10),
            user: crate::tls::login_name(),
            tls: None,
            act_as: None,
            read_mode: ReadMode::Active,
            auto_msync: AutoMsync::Never,
            observer_timeout: Duration::from_secs(3),
            block_read_timeout: Duration::from_secs(5),
            block_write_timeout: Duration::from_secs(30),
            lease_renew_interval: Duration::from_secs(20),
            block_groups_per_fetch: 0,
            source_ip: None,
        }
    }
}

/// What a client has seen, as a causality token to hand to another client (DESIGN §5):
/// its state ID and, through a router, the highest state ID of each nameservice (§10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateToken {
    pub state_id: u64,
    pub nameservices: BTreeMap<String, u64>,
}

/// Options of [`Client::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub overwrite: bool,
    pub create_parents: bool,
    /// 0: the default (0644).
    pub permission: u32,
    /// Empty: inherited from the parent directory.
    pub storage_policy: String,
    /// Bytes per internal block; 0: the metaserver's default.
    pub block_size: u64,
}

#[derive(Debug)]
struct Inner {
    targets: Targets,
    config: ClientConfig,
    client_id: [u8; 16],
    next_call: AtomicU64,
    last_seen: AtomicU64,
    /// Through a router: the highest state ID seen of each nameservice (DESIGN §10).
    state_ids: Mutex<BTreeMap<String, u64>>,
    observers: Observers,
    last_msync: Mutex<Option<Instant>>,
    /// The member that answered the last read.
    last_reader: Mutex<String>,
}

/// A raftfs client. Cheap to clone; clones share identity and state.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Client {
    /// Creates a client; connections open lazily.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let targets = Targets::new(
            config.metas.clone(),
            config.rpc_timeout,
            config.tls.as_ref(),
            crate::failover::CallerHeaders::new(
                &config.user,
                config.tls.as_ref(),
                config.act_as.as_ref(),
            )?,
            config.source_ip,
        )?;
        let client_id: [u8; 16] = rand::random();
        Ok(Self {
            inner: Arc::new(Inner {
                targets,
                config,
                client_id,
                next_call: AtomicU64::new(1),
                last_seen: AtomicU64::new(0),
                state_ids: Mutex::new(BTreeMap::new()),
                observers: Observers::default(),
                last_msync: Mutex::new(None),
                last_reader: Mutex::new(String::new()),
            }),
        })
    }

    /// Shorthand for a client with default settings.
    pub fn connect(metas: Vec<String>) -> Result<Self, ClientError> {
        Self::new(ClientConfig::new(metas))
    }

    /// This client's lease-holder name.
    pub fn holder(&self) -> String {
        format!("raftfs-client-{}", hex(&self.inner.client_id))
    }

    /// The highest state ID this client has seen: a causality token to hand to another client.
    pub fn state_id(&self) -> u64 {
        self.inner.last_seen.load(Ordering::Acquire)
    }

    /// Raises this client's state ID to at least `state_id` (a token from another client).
    pub fn observe(&self, state_id: u64) {
        self.inner.last_seen.fetch_max(state_id, Ordering::AcqRel);
    }

    /// Everything this client has seen, to hand to another client ([`Self::observe_token`]):
    /// its state ID and, through a router, each nameservice's.
    pub fn token(&self) -> StateToken {
        StateToken {
            state_id: self.state_id(),
            nameservices: lock(&self.inner.state_ids).clone(),
        }
    }

    /// Raises this client's state IDs to at least a token's (another client's).
    pub fn observe_token(&self, token: &StateToken) {
        self.observe(token.state_id);
        self.observe_nameservices(token.nameservices.iter().map(|(k, v)| (k.as_str(), *v)));
    }

    fn observe_nameservices<'a>(&self, seen: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut map = lock(&self.inner.state_ids);
        for (name, id) in seen {
            let e = map.entry(name.to_owned()).or_default();
            *e = (*e).max(id);
        }
    }

    fn header(&self, call_id: u64) -> pb::RequestHeader {
        pb::RequestHeader {
            client_id: self.inner.client_id.to_vec(),
            call_id,
            last_seen_state_id: self.state_id(),
            observer_read: self.inner.config.read_mode == ReadMode::Observer,
            state_ids: lock(&self.inner.state_ids)
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    fn seen(&self, header: Option<&pb::ResponseHeader>) {
        if let Some(h) = header {
            self.observe(h.state_id);
            self.observe_nameservices(h.state_ids.iter().map(|(k, v)| (k.as_str(), *v)));
        }
    }

    /// A refusal reflects a state too (`NotFound` at state 90): later reads must not go back.
    fn seen_refusal<T>(&self, r: Result<T, ClientError>) -> Result<T, ClientError> {
        if let Err(ClientError::Refused {
            state_id,
            state_ids,
            ..
        }) = &r
        {
            self.observe(*state_id);
            self.observe_nameservices(state_ids.iter().map(|(k, v)| (k.as_str(), *v)));
        }
        r
    }

    /// This client's read mode.
    pub fn read_mode(&self) -> ReadMode {
        self.inner.config.read_mode
    }

    /// The address of the member that answered the last read (observer or active).
    pub fn last_reader(&self) -> String {
        lock(&self.inner.last_reader).clone()
    }

    fn set_last_reader(&self, addr: String) {
        *lock(&self.inner.last_reader) = addr;
    }

    async fn namespace_call<T, F, Fut>(&self, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut(NamespaceClient<Rpc>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let r = self
            .inner
            .targets
            .call(self.inner.config.failover_deadline, |ch| {
                f(NamespaceClient::new(ch))
            })
            .await;
        self.seen_refusal(r)
    }

    /// A read: on an observer in observer mode (after an auto-msync if one is due), else, or
    /// when no observer can answer, on the active.
    async fn read_call<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: FnMut(NamespaceClient<Rpc>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let on_observer = self.inner.config.read_mode == ReadMode::Observer;
        if on_observer {
            self.auto_msync().await?;
        }
        let r = self.read_on(on_observer, f).await;
        match r {
            Ok((v, addr)) => {
                self.set_last_reader(addr);
                Ok(v)
            }
            Err(e) => self.seen_refusal(Err(e)),
        }
    }

    /// A read on an observer (when `on_observer`; the active when none can answer) or on the
    /// active, with the member that answered.
    async fn read_on<T, F, Fut>(
        &self,
        on_observer: bool,
        mut f: F,
    ) -> Result<(T, String), ClientError>
    where
        F: FnMut(NamespaceClient<Rpc>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        if on_observer {
            let answer = self
                .inner
                .observers
                .call(
                    &self.inner.targets,
                    self.inner.config.observer_timeout,
                    |ch| f(NamespaceClient::new(ch)),
                )
                .await;
            if let Some(answer) = answer {
                return answer;
            }
        }
        let v = self
            .inner
            .targets
            .call(self.inner.config.failover_deadline, |ch| {
                f(NamespaceClient::new(ch))
            })
            .await?;
        Ok((v, self.inner.targets.current()))
    }

    /// Runs a call that another client made (a router forwarding it, DESIGN §10) through
    /// this client's failover and read-mode logic: on an observer first when `observer_read`
    /// (a read the caller allowed there), else on the active. `f` builds the whole request,
    /// header included (the caller's client id, call id and state ID); this client's own
    /// state IDs and call numbers are neither used nor changed.
    pub async fn forward<T, F, Fut>(&self, observer_read: bool, f: F) -> Result<T, ClientError>
    where
        F: FnMut(NamespaceClient<Rpc>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        self.read_on(observer_read, f).await.map(|(v, _)| v)
    }

    async fn auto_msync(&self) -> Result<(), ClientError> {
        let due = match self.inner.config.auto_msync {
            AutoMsync::Never => false,
            AutoMsync::Always => true,
            AutoMsync::Every(period) => {
                lock(&self.inner.last_msync).is_none_or(|t| t.elapsed() >= period)
            }
        };
        if due {
            self.msync().await?;
        }
        Ok(())
    }

    /// Sends one mutation; retries carry the same call id.
    async fn mutate(&self, op: Op) -> Result<pb::MutateResponse, ClientError> {
        let call_id = self.inner.next_call.fetch_add(1, Ordering::Relaxed);
        let r = self
            .namespace_call(|mut c| {
                let req = pb::MutateRequest {
                    header: Some(self.header(call_id)),
                    op: Some(op.clone()),
                };
                async move { c.mutate(req).await.map(tonic::Response::into_inner) }
            })
            .await?;
        self.seen(r.header.as_ref());
        Ok(r)
    }

    async fn mutate_inode(&self, op: Op) -> Result<FileStatus, ClientError> {
        let r = self.mutate(op).await?;
        r.inode
            .map(FileStatus::from)
            .ok_or_else(|| ClientError::Rpc(tonic::Status::internal("reply without inode")))
    }

    /// This client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A (lazily connecting, shared) channel to a blockserver.
    pub fn block_channel(&self, addr: &str) -> Result<Rpc, ClientError> {
        self.inner.targets.channel(addr)
    }

    /// Closes the open block group of a file this client writes at `file_length` bytes and
    /// allocates the next one; the active chooses its servers, avoiding `exclude`.
    pub async fn add_block(
        &self,
        path: &str,
        file_length: u64,
        exclude: &[BlockServerId],
    ) -> Result<(FileStatus, LocatedGroup), ClientError> {
        let r = self
            .mutate(Op::AddBlock(pb::AddBlockOp {
                path: path.into(),
                lease_holder: self.holder(),
                file_length,
                exclude_nodes: exclude.iter().map(|n| n.get()).collect(),
            }))
            .await?;
        match (r.inode, r.block_group) {
            (Some(i), Some(g)) => Ok((FileStatus::from(i), model::located_group(g))),
            _ => Err(ClientError::Rpc(tonic::Status::internal(
                "add_block reply without its group",
            ))),
        }
    }

    /// The file at `path` and its closed block groups holding bytes of
    /// `[offset, offset+length)` (`length` 0: to the end), with where their internal blocks
    /// are: a page of at most `limit` groups (0: the server's page, 1024). When
    /// [`LocatedBlocks::more`], ask again from the end of the last group.
    pub async fn get_blocks(
        &self,
        path: &str,
        offset: u64,
        length: u64,
        limit: u32,
    ) -> Result<LocatedBlocks, ClientError> {
        let r = self
            .read_call(|mut c| {
                let req = pb::GetBlocksRequest {
                    header: Some(self.header(0)),
                    path: path.into(),
                    offset,
                    length,
                    limit,
                };
                async move { c.get_blocks(req).await.map(tonic::Response::into_inner) }
            })
            .await?;
        self.seen(r.header.as_ref());
        let inode = r
            .inode
            .ok_or_else(|| ClientError::Rpc(tonic::Status::internal("reply without inode")))?;
        Ok(LocatedBlocks {
            file: FileStatus::from(inode),
            groups: r.groups.into_iter().map(model::located_group).collect(),
            more: r.has_more,
            readable_length: r.readable_length,
        })
    }

    /// Tells every metaserver that a copy of an internal block is corrupt (each keeps its own
    /// view of block locations). Best effort: a metaserver that does not answer learns it
    /// from the next reader or from reconstruction. Where callers are authenticated, only
    /// blockservers may report (DESIGN §9) and this is refused; the blockserver that served
    /// the corrupt bytes has reported them itself.
    pub async fn report_corrupt(
        &self,
        group: GroupId,
        index: u32,
        node: BlockServerId,
        reason: &str,
    ) {
        let addrs = self.inner.config.metas.clone();
        let calls = addrs.into_iter().map(|addr| {
            let req = pb::ReportCorruptRequest {
                header: Some(self.header(0)),
                group: group.get(),
                index,
                node_id: node.get(),
                reason: reason.to_owned(),
                // The client does not know its nameservice's name: a federated one's members
                // refuse the report, and the serving blockserver's own report stands.
                nameservice: String::new(),
            };
            let channel = self.inner.targets.channel(&addr);
            async move {
                let Ok(ch) = channel else { return };
                let mut rpc = NamespaceClient::new(ch);
                let call = rpc.report_corrupt(req);
                if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), call).await {
                    tracing::debug!(%addr, error = %e, "corruption report not delivered");
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Health of the block groups at or below `path` (`metactl fsck`, `ec report`).
    pub async fn fsck(&self, path: &str, list_files: bool) -> Result<FsckReport, ClientError> {
        let mut report = FsckReport::default();
        let mut after = String::new();
        loop {
            let (page, next) = self.fsck_page(path, list_files, &after, 0).await?;
            report.merge(page);
            match next {
                Some(next) => after = next,
                None => return Ok(report),
            }
        }
    }

    /// One page of `fsck`: at most `limit` entries of the tree (0: the server's page) walked
    /// from `after` (empty: from the start). Returns the page's report and where the next
    /// page starts; none when the walk ended. Each page reads the namespace as it is then.
    pub async fn fsck_page(
        &self,
        path: &str,
        list_files: bool,
        after: &str,
        limit: u32,
    ) -> Result<(FsckReport, Option<String>), ClientError> {
        let r = self
            .read_call(|mut c| {
                let req = pb::FsckRequest {
                    header: Some(self.header(0)),
                    path: path.into(),
                    list_files,
                    after: after.into(),
                    limit,
                };
                async move { c.fsck(req).await.map(tonic::Response::into_inner) }
            })
            .await?;
        self.seen(r.header.as_ref());
        let next = (!r.next_after.is_empty()).then(|| r.next_after.clone());
        Ok((model::fsck_report(r)?, next))
    }

    /// `mkdir` (with `parents`: `mkdir -p`).
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<FileStatus, ClientError> {
        self.mkdir_with_permission(path, parents, 0).await
    }

    /// [`Client::mkdir`] with the new directory's mode (0: the default, under the umask).
    pub async fn mkdir_with_permission(
        &self,
        path: &str,
        parents: bool,
        permission: u32,
    ) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::Mkdir(pb::MkdirOp {
            path: path.into(),
            parents,
            permission,
            owner: self.inner.config.user.clone(),
            group: String::new(),
        }))
        .await
    }

    /// Creates a file under construction, leased to this client.
    pub async fn create(
        &self,
        path: &str,
        opts: &CreateOptions,
    ) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::Create(pb::CreateOp {
            path: path.into(),
            overwrite: opts.overwrite,
            create_parents: opts.create_parents,
            permission: opts.permission,
            owner: self.inner.config.user.clone(),
            group: String::new(),
            storage_policy: opts.storage_policy.clone(),
            lease_holder: self.holder(),
            block_size: opts.block_size,
        }))
        .await
    }

    /// Closes a file this client writes, at `length` bytes.
    pub async fn complete(&self, path: &str, length: u64) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::Complete(pb::CompleteOp {
            path: path.into(),
            lease_holder: self.holder(),
            length,
        }))
        .await
    }

    /// Reopens a closed file for appending.
    pub async fn append(&self, path: &str) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::Append(pb::AppendOp {
            path: path.into(),
            lease_holder: self.holder(),
        }))
        .await
    }

    /// `touch`: creates an empty, closed file (or sets the mtime of an existing one).
    pub async fn touch(&self, path: &str, now_ms: u64) -> Result<FileStatus, ClientError> {
        match self.create(path, &CreateOptions::default()).await {
            Ok(_) => self.complete(path, 0).await,
            Err(e) if e.is(pb::ErrorKind::AlreadyExists) => {
                self.set_times(path, Some(now_ms), None).await
            }
            Err(e) => Err(e),
        }
    }

    /// Atomic rename of a file or directory.
    pub async fn rename(
        &self,
        src: &str,
        dst: &str,
        overwrite: bool,
    ) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::Rename(pb::RenameOp {
            src: src.into(),
            dst: dst.into(),
            overwrite,
        }))
        .await
    }

    /// Deletes; a non-empty directory needs `recursive`. The path is gone for every client
    /// once this returns; a directory's contents are reclaimed in the background (the
    /// active's reclaim worker), in journal entries of bounded size.
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<(), ClientError> {
        self.mutate(Op::Delete(pb::DeleteOp {
            path: path.into(),
            recursive,
        }))
        .await?;
        Ok(())
    }

    pub async fn set_permission(
        &self,
        path: &str,
        permission: u32,
    ) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::SetPermission(pb::SetPermissionOp {
            path: path.into(),
            permission,
        }))
        .await
    }

    pub async fn set_owner(
        &self,
        path: &str,
        owner: &str,
        group: &str,
    ) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::SetOwner(pb::SetOwnerOp {
            path: path.into(),
            owner: owner.into(),
            group: group.into(),
        }))
        .await
    }

    pub async fn set_times(
        &self,
        path: &str,
        mtime_ms: Option<u64>,
        atime_ms: Option<u64>,
    ) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::SetTimes(pb::SetTimesOp {
            path: path.into(),
            mtime_ms,
            atime_ms,
        }))
        .await
    }

    pub async fn set_storage_policy(
        &self,
        path: &str,
        policy: &str,
    ) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::SetStoragePolicy(pb::SetStoragePolicyOp {
            path: path.into(),
            policy: policy.into(),
        }))
        .await
    }

    /// The storage policy in effect for `path`.
    pub async fn get_storage_policy(&self, path: &str) -> Result<String, ClientError> {
        Ok(self.stat(path).await?.storage_policy)
    }

    /// Renews every lease this client holds.
    pub async fn renew_lease(&self) -> Result<(), ClientError> {
        self.mutate(Op::RenewLease(pb::RenewLeaseOp {
            lease_holder: self.holder(),
        }))
        .await
        .map(|_| ())
    }

    /// Closes a file whose writer went away.
    pub async fn recover_lease(&self, path: &str) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::RecoverLease(pb::RecoverLeaseOp { path: path.into() }))
            .await
    }

    pub async fn symlink(&self, path: &str, target: &str) -> Result<FileStatus, ClientError> {
        self.mutate_inode(Op::Symlink(pb::SymlinkOp {
            path: path.into(),
            target: target.into(),
            create_parents: false,
        }))
        .await
    }

    /// Sets an extended attribute; with `expected`, only if it holds that value (`Some(None)`:
    /// only if absent) — a compare-and-set.
    pub async fn set_xattr(
        &self,
        path: &str,
        name: &str,
        value: &[u8],
        expected: Option<Option<&[u8]>>,
    ) -> Result<(), ClientError> {
        let (expected, expect_absent) = match expected {
            None => (None, false),
            Some(None) => (None, true),
            Some(Some(v)) => (Some(v.to_vec()), false),
        };
        self.mutate(Op::SetXattr(pb::SetXattrOp {
            path: path.into(),
            name: name.into(),
            value: value.to_vec(),
            expected,
            expect_absent,
        }))
        .await
        .map(|_| ())
    }

    /// Appends `value` to an extended attribute (created when absent), atomically.
    pub async fn append_xattr(
        &self,
        path: &str,
        name: &str,
        value: &[u8],
    ) -> Result<(), ClientError> {
        self.mutate(Op::AppendXattr(pb::AppendXattrOp {
            path: path.into(),
            name: name.into(),
            value: value.to_vec(),
        }))
        .await
        .map(|_| ())
    }

    pub async fn remove_xattr(&self, path: &str, name: &str) -> Result<(), ClientError> {
        self.mutate(Op::RemoveXattr(pb::RemoveXattrOp {
            path: path.into(),
            name: name.into(),
        }))
        .await
        .map(|_| ())
    }

    /// Extended attributes (all when `names` is empty).
    pub async fn get_xattrs(
        &self,
        path: &str,
        names: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ClientError> {
        let r = self
            .read_call(|mut c| {
                let req = pb::GetXattrsRequest {
                    header: Some(self.header(0)),
                    path: path.into(),
                    names: names.to_vec(),
                };
                async move { c.get_xattrs(req).await.map(tonic::Response::into_inner) }
            })
            .await?;
        self.seen(r.header.as_ref());
        Ok(r.xattrs.into_iter().map(|x| (x.name, x.value)).collect())
    }

    pub async fn stat(&self, path: &str) -> Result<FileStatus, ClientError> {
        let r = self
            .read_call(|mut c| {
                let req = pb::StatRequest {
                    header: Some(self.header(0)),
                    path: path.into(),
                };
                async move { c.stat(req).await.map(tonic::Response::into_inner) }
            })
            .await?;
        self.seen(r.header.as_ref());
        r.inode
            .map(FileStatus::from)
            .ok_or_else(|| ClientError::Rpc(tonic::Status::internal("stat without inode")))
    }

    /// One page of a listing, names strictly after `start_after`.
    pub async fn list_page(
        &self,
        path: &str,
        start_after: &str,
        limit: u32,
    ) -> Result<ListPage, ClientError> {
        let r = self
            .read_call(|mut c| {
                let req = pb::ListRequest {
                    header: Some(self.header(0)),
                    path: path.into(),
                    start_after: start_after.into(),
                    limit,
                };
                async move { c.list(req).await.map(tonic::Response::into_inner) }
            })
            .await?;
        self.seen(r.header.as_ref());
        Ok(ListPage {
            entries: r.entries.into_iter().map(FileStatus::from).collect(),
            has_more: r.has_more,
        })
    }

    /// The whole listing, page by page.
    pub async fn list(&self, path: &str) -> Result<Vec<FileStatus>, ClientError> {
        let mut out: Vec<FileStatus> = Vec::new();
        loop {
            let after = out.last().map(|f| f.name.clone()).unwrap_or_default();
            let page = self.list_page(path, &after, 0).await?;
            out.extend(page.entries);
            if !page.has_more {
                return Ok(out);
            }
        }
    }

    pub async fn content_summary(&self, path: &str) -> Result<ContentSummary, ClientError> {
        let r = self
            .read_call(|mut c| {
                let req = pb::ContentSummaryRequest {
                    header: Some(self.header(0)),
                    path: path.into(),
                };
                async move {
                    c.content_summary(req)
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        self.seen(r.header.as_ref());
        Ok(ContentSummary {
            directories: r.directories,
            files: r.files,
            symlinks: r.symlinks,
            length: r.length,
            space_consumed: r.space_consumed,
        })
    }

    /// What changed in directory `path` from snapshot `from` to `to` (`"."`: the live tree),
    /// every page read; paths relative to `path`.
    pub async fn snapshot_diff(
        &self,
        path: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::model::DiffEntry>, ClientError> {
        let mut out = Vec::new();
        let mut cursor = Vec::new();
        loop {
            let r = self
                .read_call(|mut c| {
                    let req = pb::SnapshotDiffRequest {
                        header: Some(self.header(0)),
                        path: path.into(),
                        from: from.into(),
                        to: to.into(),
                        cursor: cursor.clone(),
                        limit: 0,
                    };
                    async move { c.snapshot_diff(req).await.map(tonic::Response::into_inner) }
                })
                .await?;
            self.seen(r.header.as_ref());
            for e in r.entries {
                out.push(crate::model::diff_entry(e)?);
            }
            if r.cursor.is_empty() {
                return Ok(out);
            }
            cursor = r.cursor;
        }
    }

    /// Raises this client's state ID to the active's committed index, so that later reads see
    /// everything acknowledged to anyone before this call.
    pub async fn msync(&self) -> Result<u64, ClientError> {
        let r = self
            .namespace_call(|mut c| {
                let req = pb::MsyncRequest {
                    header: Some(self.header(0)),
                };
                async move { c.msync(req).await.map(tonic::Response::into_inner) }
            })
            .await?;
        self.seen(r.header.as_ref());
        *lock(&self.inner.last_msync) = Some(Instant::now());
        Ok(self.state_id())
    }

    /// The cluster as the active sees it.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        let r = self
            .inner
            .targets
            .call(self.inner.config.failover_deadline, |ch| async move {
                AdminClient::new(ch)
                    .cluster_status(pb::ClusterStatusRequest {})
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        model::cluster_status(r)
    }

    /// The active's reconstruction queues, tasks, budgets and every blockserver's xmits.
    pub async fn reconstruction_status(&self) -> Result<ReconstructionStatus, ClientError> {
        let r = self
            .inner
            .targets
            .call(self.inner.config.failover_deadline, |ch| async move {
                AdminClient::new(ch)
                    .reconstruction_status(pb::ReconstructionStatusRequest {})
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        Ok(model::reconstruction_status(r))
    }

    /// The blockservers as this nameservice's active knows them, and the nameservice's name
    /// ("" for the unnamed one).
    pub async fn block_servers(&self) -> Result<(String, Vec<BlockServerInfo>), ClientError> {
        let r = self
            .inner
            .targets
            .call(self.inner.config.failover_deadline, |ch| async move {
                AdminClient::new(ch)
                    .list_block_servers(pb::ListBlockServersRequest {})
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        Ok((
            r.nameservice,
            r.servers.into_iter().map(BlockServerInfo::from).collect(),
        ))
    }

    /// Changes the reconstruction byte budgets (journaled: they survive failover).
    pub async fn set_throttle(&self, change: &ThrottleChange) -> Result<(), ClientError> {
        self.mutate(Op::SetThrottle(model::throttle_change_pb(change)))
            .await
            .map(|_| ())
    }

    /// A step of a rolling upgrade (DESIGN §11; admin only). `Finalize` raises the cluster's
    /// format level: check first that every member's binary writes it (`node_status`).
    pub async fn upgrade(&self, step: UpgradeStep) -> Result<(), ClientError> {
        use pb::upgrade_op::Step;
        let (step, level) = match step {
            UpgradeStep::Prepare => (Step::Prepare, 0),
            UpgradeStep::Finalize { to } => (Step::Finalize, u32::from(to.0)),
            UpgradeStep::Rollback => (Step::Rollback, 0),
        };
        self.mutate(Op::Upgrade(pb::UpgradeOp {
            step: step as i32,
            level,
        }))
        .await
        .map(|_| ())
    }

    /// Takes blockserver `server` out of service or back (DESIGN §11; admin only): this
    /// nameservice's active drains it (decommission) or keeps counting its blocks
    /// (maintenance for `for`, up to 30 days).
    pub async fn set_admin_state(
        &self,
        server: BlockServerId,
        change: AdminChange,
    ) -> Result<(), ClientError> {
        use pb::set_admin_state_op::Change;
        let (change, maintenance_ms) = match change {
            AdminChange::InService => (Change::InService, 0),
            AdminChange::Decommission => (Change::Decommission, 0),
            AdminChange::Maintenance { for_ms } => (Change::Maintenance, for_ms),
        };
        self.mutate(Op::SetAdminState(pb::SetAdminStateOp {
            server: server.get(),
            change: change as i32,
            maintenance_ms,
        }))
        .await
        .map(|_| ())
    }

    /// Adds mount point `at` -> `nameservice:path` to the federation's mount table this
    /// nameservice keeps (DESIGN §10; admin only).
    pub async fn mount_add(
        &self,
        at: &str,
        nameservice: &str,
        path: &str,
    ) -> Result<(), ClientError> {
        self.mutate(Op::MountAdd(pb::MountAddOp {
            at: at.into(),
            nameservice: nameservice.into(),
            path: path.into(),
        }))
        .await
        .map(|_| ())
    }

    /// Makes directory `path` snapshottable (DESIGN §13; the superuser's).
    pub async fn allow_snapshot(&self, path: &str) -> Result<(), ClientError> {
        let op = Op::AllowSnapshot(pb::AllowSnapshotOp { path: path.into() });
        self.mutate(op).await.map(drop)
    }

    /// Makes directory `path` no longer snapshottable (refused while it has snapshots).
    pub async fn disallow_snapshot(&self, path: &str) -> Result<(), ClientError> {
        let op = Op::DisallowSnapshot(pb::DisallowSnapshotOp { path: path.into() });
        self.mutate(op).await.map(drop)
    }

    /// Takes a snapshot of directory `path`, named `name` (or after the time); returns its
    /// name: it is read at `path/.snapshot/NAME`.
    pub async fn create_snapshot(
        &self,
        path: &str,
        name: Option<&str>,
    ) -> Result<String, ClientError> {
        let op = Op::CreateSnapshot(pb::CreateSnapshotOp {
            path: path.into(),
            name: name.unwrap_or_default().into(),
        });
        let answer = self.mutate(op).await?;
        Ok(answer
            .inode
            .map(|i| i.name)
            .unwrap_or_else(|| name.unwrap_or_default().to_owned()))
    }

    /// Deletes snapshot `name` of `path`.
    pub async fn delete_snapshot(&self, path: &str, name: &str) -> Result<(), ClientError> {
        let op = Op::DeleteSnapshot(pb::DeleteSnapshotOp {
            path: path.into(),
            name: name.into(),
        });
        self.mutate(op).await.map(drop)
    }

    /// Renames snapshot `from` of `path` to `to`.
    pub async fn rename_snapshot(
        &self,
        path: &str,
        from: &str,
        to: &str,
    ) -> Result<(), ClientError> {
        let op = Op::RenameSnapshot(pb::RenameSnapshotOp {
            path: path.into(),
            from: from.into(),
            to: to.into(),
        });
        self.mutate(op).await.map(drop)
    }

    /// Points mount point `at`, which must lead to `from` (`NAMESERVICE`, path), at `to`:
    /// one edit of the table (admin only; `balance`'s switch).
    pub async fn mount_move(
        &self,
        at: &str,
        from: (&str, &str),
        to: (&str, &str),
    ) -> Result<(), ClientError> {
        self.mutate(Op::MountMove(pb::MountMoveOp {
            at: at.into(),
            from_nameservice: from.0.into(),
            from_path: from.1.into(),
            nameservice: to.0.into(),
            path: to.1.into(),
        }))
        .await
        .map(drop)
    }

    /// Makes `path` read-only (`frozen`) or writable again (the superuser's; DESIGN §13):
    /// while frozen, every change under it is refused with the retriable `ReadOnly`.
    pub async fn freeze(&self, path: &str, frozen: bool) -> Result<(), ClientError> {
        let op = Op::Freeze(pb::FreezeOp {
            path: path.into(),
            frozen,
        });
        self.mutate(op).await.map(drop)
    }

    /// Removes mount point `at` (admin only; the data stays in its nameservice).
    pub async fn mount_remove(&self, at: &str) -> Result<(), ClientError> {
        self.mutate(Op::MountRemove(pb::MountRemoveOp { at: at.into() }))
            .await
            .map(|_| ())
    }

    /// Sets (`None`: clears) the nameservice of the paths under no mount point (admin only).
    pub async fn set_default_nameservice(
        &self,
        nameservice: Option<&str>,
    ) -> Result<(), ClientError> {
        self.mutate(Op::SetDefaultNameservice(pb::SetDefaultNameserviceOp {
            nameservice: nameservice.unwrap_or_default().into(),
        }))
        .await
        .map(|_| ())
    }

    /// The federation's mount table this nameservice keeps, read as every read is (at least
    /// as new as what this client has seen). A reply that is not a valid table is an error.
    pub async fn mount_table(&self) -> Result<MountTable, ClientError> {
        Ok(self.mount_table_at(0).await?.0)
    }

    /// [`Self::mount_table`] at a state at least `at_least` of the nameservice that keeps it
    /// (a router reading the table as new as a caller has seen it), with the state it
    /// reflects. `at_least` holds for this read only: a bogus one fails this read and leaves
    /// the client's own state ID as it was.
    pub async fn mount_table_at(&self, at_least: u64) -> Result<(MountTable, u64), ClientError> {
        let r = self
            .read_call(|mut c| {
                let mut header = self.header(0);
                header.last_seen_state_id = header.last_seen_state_id.max(at_least);
                let req = pb::GetMountTableRequest {
                    header: Some(header),
                };
                async move {
                    c.get_mount_table(req)
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        self.seen(r.header.as_ref());
        let state_id = r.header.as_ref().map_or(0, |h| h.state_id);
        Ok((model::mount_table(r)?, state_id))
    }

    /// The membership as the member this client talks to knows it (any member answers).
    pub async fn members(&self) -> Result<Vec<Member>, ClientError> {
        let r = self
            .inner
            .targets
            .call(self.inner.config.failover_deadline, |ch| async move {
                AdminClient::new(ch)
                    .members(pb::MembersRequest {})
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        model::members(r.members)
    }

    async fn membership_call<F, Fut>(&self, mut f: F) -> Result<Vec<Member>, ClientError>
    where
        F: FnMut(AdminClient<Rpc>) -> Fut,
        Fut: std::future::Future<Output = Result<pb::MembershipChangeResponse, tonic::Status>>,
    {
        let r = self
            .inner
            .targets
            .call(self.inner.config.failover_deadline, |ch| {
                f(AdminClient::new(ch))
            })
            .await;
        let r = self.seen_refusal(r)?;
        self.seen(r.header.as_ref());
        model::members(r.members)
    }

    /// Adds the metaserver `id` (already running at `addr`, outside the membership) as an
    /// observer; returns once it has caught up.
    pub async fn add_observer(&self, id: MemberId, addr: &str) -> Result<Vec<Member>, ClientError> {
        self.membership_call(|mut c| {
            let req = pb::AddObserverRequest {
                id: id.get(),
                addr: addr.into(),
            };
            async move { c.add_observer(req).await.map(tonic::Response::into_inner) }
        })
        .await
    }

    /// Removes a voter or an observer from the membership.
    pub async fn remove_member(&self, id: MemberId) -> Result<Vec<Member>, ClientError> {
        self.membership_call(|mut c| async move {
            c.remove_member(pb::RemoveMemberRequest { id: id.get() })
                .await
                .map(tonic::Response::into_inner)
        })
        .await
    }

    /// Promotes an observer to voter.
    pub async fn promote(&self, id: MemberId) -> Result<Vec<Member>, ClientError> {
        self.membership_call(|mut c| async move {
            c.promote_member(pb::PromoteMemberRequest { id: id.get() })
                .await
                .map(tonic::Response::into_inner)
        })
        .await
    }

    /// Makes the voter `id` the active. If another voter wins the election instead, the
    /// server says so (`Unavailable`) and the call is retried at the new active, until the
    /// failover deadline.
    pub async fn transfer_leader(&self, id: MemberId) -> Result<Vec<Member>, ClientError> {
        self.membership_call(|mut c| async move {
            c.transfer_leader(pb::TransferLeaderRequest { id: id.get() })
                .await
                .map(tonic::Response::into_inner)
        })
        .await
    }

    /// Has the active build a snapshot of the namespace now and purge its log behind it (as
    /// HDFS's `dfsadmin -saveNamespace`). Returns (snapshot index, purged index).
    pub async fn checkpoint(&self) -> Result<(u64, u64), ClientError> {
        let r = self
            .inner
            .targets
            .call(self.inner.config.failover_deadline, |ch| async move {
                AdminClient::new(ch)
                    .checkpoint(pb::CheckpointRequest {})
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await;
        let r = self.seen_refusal(r)?;
        self.seen(r.header.as_ref());
        Ok((r.snapshot_index, r.purged_index))
    }

    /// One metaserver's own view of itself (no failover: it asks exactly `addr`).
    pub async fn node_status(&self, addr: &str) -> Result<NodeStatus, ClientError> {
        let ch = self.inner.targets.channel(addr)?;
        let r = tokio::time::timeout(
            self.inner.config.rpc_timeout,
            AdminClient::new(ch).node_status(pb::NodeStatusRequest {}),
        )
        .await
        .map_err(|_| ClientError::Unavailable {
            deadline: self.inner.config.rpc_timeout,
            last: format!("{addr} did not answer"),
        })??;
        Ok(r.into_inner().into())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    /// Waits for the next connection to `listener` and returns the address it came from.
    async fn next_peer(listener: &tokio::net::TcpListener) -> IpAddr {
        let (_conn, peer) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("a connection within 5 s")
            .expect("accept");
        peer.ip()
    }

    /// The link proxy of a local cluster tells clients apart by their source address: both
    /// kinds of connection a client opens, to a metaserver and to a blockserver, come from
    /// the configured one.
    #[tokio::test]
    async fn every_connection_comes_from_the_configured_source_address() {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 77));
        let meta = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let block = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let meta_addr = meta.local_addr().expect("addr").to_string();
        let block_addr = block.local_addr().expect("addr").to_string();
        let mut config = ClientConfig::new(vec![meta_addr]);
        config.source_ip = Some(source);
        config.failover_deadline = Duration::from_secs(2);
        config.rpc_timeout = Duration::from_millis(500);
        let c = Client::new(config).expect("client");

        // The listeners accept and never answer: the calls fail, the addresses are all we need.
        let call = tokio::spawn({
            let c = c.clone();
            async move { c.msync().await }
        });
        assert_eq!(next_peer(&meta).await, source, "to a metaserver");
        call.abort();

        let rpc = c.block_channel(&block_addr).expect("channel");
        let call = tokio::spawn(async move {
            NamespaceClient::new(rpc)
                .msync(pb::MsyncRequest::default())
                .await
        });
        assert_eq!(next_peer(&block).await, source, "to a blockserver");
        call.abort();
    }
}
