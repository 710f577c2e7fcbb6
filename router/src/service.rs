//! The client protocol, served by a router: each call goes to the nameservice that owns its
//! path (`MountTable::resolve`, the function clients that resolve the table themselves
//! share), with the caller's identity, client id, call id and that nameservice's state ID;
//! the answer comes back with paths in the federated tree and the nameservice's state ID
//! named by nameservice (DESIGN §10).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::future::try_join_all;
use raftfs_client::failover::Rpc;
use raftfs_core::federation::{FederationError, MountTable, NameserviceId, Resolved};
use raftfs_core::identity::CLAIMED_USER_HEADER;
use raftfs_core::namespace::NsPath;
use raftfs_proto as pb;
use raftfs_proto::admin_server::Admin;
use raftfs_proto::mutate_request::Op;
use raftfs_proto::namespace_client::NamespaceClient;
use raftfs_proto::namespace_server::Namespace;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Response, Status};

use crate::error::RouterError;
use crate::paths::{self, back, merge_listing, mount_dir, name_as_mounted, rebase};
use crate::state_ids::{self, forwarded, touched};
use crate::table::Table;
use crate::upstreams::Upstreams;

/// What every call of a router shares.
#[derive(Debug)]
pub struct Router {
    pub upstreams: Upstreams,
    pub table: Table,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Debug builds only: forward the wrong nameservice's state ID (HDFS-17156).
    pub wrong_state_id: bool,
}

/// The `Namespace` and `Admin` services of a router.
#[derive(Debug, Clone)]
pub struct RouterService {
    router: Arc<Router>,
}

type Claim = MetadataValue<Ascii>;

/// The name the caller's call claims at the nameservice: the caller the router's port
/// established (simple mode: the name it claimed).
fn claim<T>(req: &Request<T>) -> Result<Claim, Status> {
    let caller = raftfs_runtime::caller_of(req)?;
    MetadataValue::try_from(caller.name())
        .map_err(|_| Status::invalid_argument("the caller's name cannot be forwarded"))
}

/// One call of a client, on its way to one nameservice.
struct Call<'a> {
    router: &'a Router,
    user: Claim,
    header: Option<pb::RequestHeader>,
    /// The nameservices this call was sent to, for the metrics.
    reached: std::sync::Mutex<Vec<String>>,
}

impl Call<'_> {
    /// The header `ns` is sent: this caller's, with `ns`'s own state ID.
    fn header_for(&self, ns: &NameserviceId) -> Option<pb::RequestHeader> {
        Some(forwarded(
            ns,
            self.header.as_ref(),
            self.router.wrong_state_id,
        ))
    }

    /// Sends `req` (its header already `ns`'s) to nameservice `ns` through its client's
    /// failover: to an observer first when the forwarded header allows it.
    async fn send<Req, Resp, F, Fut>(
        &self,
        ns: &NameserviceId,
        observer_read: bool,
        req: Req,
        rpc: F,
    ) -> Result<Resp, RouterError>
    where
        Req: Clone,
        F: Fn(NamespaceClient<Rpc>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let client = self.router.upstreams.get(ns)?;
        {
            let mut reached = self.reached.lock().unwrap_or_else(|p| p.into_inner());
            if !reached.iter().any(|n| n == ns.as_str()) {
                reached.push(ns.as_str().to_owned());
            }
        }
        client
            .forward(observer_read, |c| {
                let mut r = Request::new(req.clone());
                r.metadata_mut()
                    .insert(CLAIMED_USER_HEADER, self.user.clone());
                let answer = rpc(c, r);
                async move { answer.await.map(Response::into_inner) }
            })
            .await
            .map_err(RouterError::upstream(ns))
    }

    fn observer_read(&self, ns: &NameserviceId) -> bool {
        self.header_for(ns).is_some_and(|h| h.observer_read)
    }

    /// The newest table this caller was routed by: this call's must be at least as new.
    fn table_seen(&self) -> u64 {
        state_ids::table_seen(self.header.as_ref())
    }

    /// The header of an answer: the state IDs of the nameservices reached, and the table's.
    fn answered<'n>(
        &self,
        reached: impl IntoIterator<Item = (&'n NameserviceId, u64)>,
    ) -> pb::ResponseHeader {
        state_ids::answered(reached, self.router.table.read_at())
    }

    /// `f` on the mount table as new as this caller needs it.
    async fn with_table<T>(
        &self,
        f: impl Fn(&MountTable) -> Result<T, FederationError>,
    ) -> Result<(Arc<MountTable>, T), RouterError> {
        self.router.table.with(self.table_seen(), f).await
    }

    /// Where `path` lives.
    async fn resolve(&self, path: &NsPath) -> Result<Resolved, RouterError> {
        Ok(self.with_table(|t| t.resolve(path)).await?.1)
    }
}

impl RouterService {
    pub fn new(router: Arc<Router>) -> Self {
        Self { router }
    }

    /// A call of `user` with the header its request carried.
    fn call(&self, user: Claim, header: Option<pb::RequestHeader>) -> Call<'_> {
        Call {
            router: &self.router,
            user,
            header,
            reached: std::sync::Mutex::new(Vec::new()),
        }
    }
}

/// The single path a mutation names, for those that name one.
fn path_of(op: &mut Op) -> Option<&mut String> {
    Some(match op {
        Op::Mkdir(o) => &mut o.path,
        Op::Create(o) => &mut o.path,
        Op::Complete(o) => &mut o.path,
        Op::Append(o) => &mut o.path,
        Op::SetPermission(o) => &mut o.path,
        Op::SetOwner(o) => &mut o.path,
        Op::SetTimes(o) => &mut o.path,
        Op::SetStoragePolicy(o) => &mut o.path,
        Op::RecoverLease(o) => &mut o.path,
        Op::Symlink(o) => &mut o.path,
        Op::SetXattr(o) => &mut o.path,
        Op::RemoveXattr(o) => &mut o.path,
        Op::AppendXattr(o) => &mut o.path,
        Op::AddBlock(o) => &mut o.path,
        Op::AllowSnapshot(o) => &mut o.path,
        Op::DisallowSnapshot(o) => &mut o.path,
        Op::CreateSnapshot(o) => &mut o.path,
        Op::DeleteSnapshot(o) => &mut o.path,
        Op::RenameSnapshot(o) => &mut o.path,
        Op::Freeze(o) => &mut o.path,
        Op::Rename(_)
        | Op::Delete(_)
        | Op::RenewLease(_)
        | Op::SetThrottle(_)
        | Op::SetAdminState(_)
        | Op::Upgrade(_)
        | Op::MountAdd(_)
        | Op::MountRemove(_)
        | Op::MountMove(_)
        | Op::SetDefaultNameservice(_) => return None,
    })
}

/// Where a mutation goes, with its paths rewritten for that nameservice; and the federated
/// path of the inode its answer carries.
enum Route {
    /// One nameservice.
    To(NameserviceId, Option<NsPath>),
    /// Every nameservice the caller has been answered by (a lease renewal).
    Touched,
}

impl Call<'_> {
    async fn route_mutation(&self, op: &mut Op) -> Result<Route, RouterError> {
        let table = &self.router.table;
        match op {
            Op::Rename(r) => {
                let (src, dst) = (paths::parse(&r.src)?, paths::parse(&r.dst)?);
                let (_, (from, to)) = self.with_table(|t| t.resolve_rename(&src, &dst)).await?;
                r.src = from.path.to_string();
                r.dst = to.path.to_string();
                Ok(Route::To(from.nameservice, Some(dst)))
            }
            Op::Delete(d) => {
                let path = paths::parse(&d.path)?;
                let (_, r) = self.with_table(|t| t.resolve_delete(&path)).await?;
                d.path = r.path.to_string();
                Ok(Route::To(r.nameservice, None))
            }
            Op::RenewLease(_) => Ok(Route::Touched),
            Op::SetThrottle(_) => Err(RouterError::NotThroughRouter(
                "reconstruction budgets are each nameservice's",
            )),
            Op::SetAdminState(_) => Err(RouterError::NotThroughRouter(
                "blockserver admin states are each nameservice's (metactl blockserver --federation)",
            )),
            Op::Upgrade(_) => Err(RouterError::NotThroughRouter(
                "an upgrade is each nameservice's (metactl upgrade against its members)",
            )),
            Op::MountAdd(_)
            | Op::MountRemove(_)
            | Op::MountMove(_)
            | Op::SetDefaultNameservice(_) => Ok(Route::To(table.keeper().clone(), None)),
            other => {
                let Some(p) = path_of(other) else {
                    return Err(RouterError::NotThroughRouter("this operation"));
                };
                let path = paths::parse(p)?;
                let r = self.resolve(&path).await?;
                *p = r.path.to_string();
                Ok(Route::To(r.nameservice, Some(path)))
            }
        }
    }

    /// A mutation on one nameservice's active.
    async fn mutate_on(
        &self,
        ns: &NameserviceId,
        op: Op,
    ) -> Result<pb::MutateResponse, RouterError> {
        let req = pb::MutateRequest {
            header: self.header_for(ns),
            op: Some(op),
        };
        let mut r = self
            .send(ns, false, req, |mut c, r| async move { c.mutate(r).await })
            .await?;
        r.header = Some(self.answered([(ns, state_of(r.header.as_ref()))]));
        Ok(r)
    }

    /// A lease renewal on every nameservice the caller has been answered by (where its
    /// leases can be).
    async fn mutate_touched(&self, op: Op) -> Result<pb::MutateResponse, RouterError> {
        let names: Vec<NameserviceId> = touched(self.header.as_ref())
            .iter()
            .filter_map(|n| self.router.upstreams.known(n).map(|(ns, _)| ns.clone()))
            .collect();
        let answers = try_join_all(names.iter().map(|ns| self.mutate_on(ns, op.clone()))).await?;
        let reached = names
            .iter()
            .zip(&answers)
            .map(|(ns, r)| (ns, state_of(r.header.as_ref())));
        Ok(pb::MutateResponse {
            header: Some(self.answered(reached)),
            ..Default::default()
        })
    }

    /// The msync of the nameservices the caller has been answered by: only those
    /// (HDFS-16452, HDFS-17111 fanned it out to all). One it never heard from reads on its
    /// active anyway (`state_ids::forwarded`).
    async fn msync(&self) -> Result<pb::MsyncResponse, RouterError> {
        let names: Vec<NameserviceId> = touched(self.header.as_ref())
            .iter()
            .filter_map(|n| self.router.upstreams.known(n).map(|(ns, _)| ns.clone()))
            .collect();
        let answers = try_join_all(names.iter().map(|ns| {
            let req = pb::MsyncRequest {
                header: self.header_for(ns),
            };
            self.send(ns, false, req, |mut c, r| async move { c.msync(r).await })
        }))
        .await?;
        let reached = names
            .iter()
            .zip(&answers)
            .map(|(ns, r)| (ns, state_of(r.header.as_ref())));
        Ok(pb::MsyncResponse {
            header: Some(self.answered(reached)),
        })
    }

    /// `stat` of a path; a directory that only leads to mount points (or `/` with no
    /// default nameservice) is shown as the router's.
    async fn stat(&self, path: NsPath) -> Result<pb::StatResponse, RouterError> {
        let (table, resolved) = self.resolve_or_mount_dir(&path).await?;
        let mounts = table.children_at(&path).len() as u64;
        let Some(r) = resolved else {
            return Ok(pb::StatResponse {
                header: Some(self.answered([])),
                inode: Some(mount_dir(path.name().unwrap_or_default(), mounts)),
            });
        };
        let req = pb::StatRequest {
            header: self.header_for(&r.nameservice),
            path: r.path.to_string(),
        };
        let answer = self
            .send(
                &r.nameservice,
                self.observer_read(&r.nameservice),
                req,
                |mut c, r| async move { c.stat(r).await },
            )
            .await;
        match answer {
            Ok(mut a) => {
                let is_dir = a
                    .inode
                    .as_ref()
                    .is_some_and(|i| i.kind == pb::InodeKind::Directory as i32);
                let extra = if is_dir && mounts > 0 {
                    self.mounts_not_in(&r, &table.children_at(&path)).await?
                } else {
                    0
                };
                if let Some(i) = a.inode.as_mut() {
                    name_as_mounted(i, &path);
                    // A listing shows the mount points below too.
                    i.children = i.children.saturating_add(extra);
                }
                a.header = Some(self.answered([(&r.nameservice, state_of(a.header.as_ref()))]));
                Ok(a)
            }
            Err(e) if is_not_found(&e) && mounts > 0 => Ok(pb::StatResponse {
                header: Some(self.answered([])),
                inode: Some(mount_dir(path.name().unwrap_or_default(), mounts)),
            }),
            Err(e) => Err(e),
        }
    }

    /// How many of the mount points `names` (directly below `dir`) its nameservice has no
    /// entry of: those a listing adds to the directory's own entries (one of the same name
    /// takes that entry's place).
    async fn mounts_not_in(&self, dir: &Resolved, names: &[String]) -> Result<u64, RouterError> {
        let ns = &dir.nameservice;
        let stats = names.iter().map(|name| {
            let req = pb::StatRequest {
                header: self.header_for(ns),
                path: dir.path.child(name).to_string(),
            };
            self.send(ns, self.observer_read(ns), req, |mut c, r| async move {
                c.stat(r).await
            })
        });
        let mut absent = 0;
        for answer in futures::future::join_all(stats).await {
            match answer {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => absent += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(absent)
    }

    /// Where `path` lives; `None` when no nameservice does but mount points lie below it.
    async fn resolve_or_mount_dir(
        &self,
        path: &NsPath,
    ) -> Result<(Arc<MountTable>, Option<Resolved>), RouterError> {
        // A directory that leads to mount points and that no nameservice owns is the
        // router's as the table stands: no re-read of the table (`ls /` without a default
        // would otherwise read it on every call). A mount added below it shows within a
        // poll, or at once to a client routed by a newer table.
        let table = self.router.table.get(self.table_seen()).await?;
        if table.resolve(path).is_err() && (path.is_root() || !table.children_at(path).is_empty()) {
            return Ok((table, None));
        }
        match self.with_table(|t| t.resolve(path)).await {
            Ok((t, r)) => Ok((t, Some(r))),
            Err(RouterError::Federation(FederationError::NotMounted(p))) => {
                let table = self.router.table.get(self.table_seen()).await?;
                if path.is_root() || !table.children_at(path).is_empty() {
                    Ok((table, None))
                } else {
                    Err(FederationError::NotMounted(p).into())
                }
            }
            Err(e) => Err(e),
        }
    }

    /// One page of a listing, with the mount points below the directory.
    async fn list(
        &self,
        path: NsPath,
        req: pb::ListRequest,
    ) -> Result<pb::ListResponse, RouterError> {
        let (table, resolved) = self.resolve_or_mount_dir(&path).await?;
        let mounts = table.children_at(&path);
        let mut header = self.answered([]);
        let page = match &resolved {
            None => None,
            Some(r) => {
                let fwd = pb::ListRequest {
                    header: self.header_for(&r.nameservice),
                    path: r.path.to_string(),
                    ..req.clone()
                };
                let answer = self
                    .send(
                        &r.nameservice,
                        self.observer_read(&r.nameservice),
                        fwd,
                        |mut c, r| async move { c.list(r).await },
                    )
                    .await;
                match answer {
                    Ok(a) => {
                        header = self.answered([(&r.nameservice, state_of(a.header.as_ref()))]);
                        Some((a.entries, a.has_more))
                    }
                    Err(e) if is_not_found(&e) && !mounts.is_empty() => None,
                    Err(e) => return Err(e),
                }
            }
        };
        let (entries, has_more) = merge_listing(page, &mounts, &req.start_after, req.limit);
        Ok(pb::ListResponse {
            header: Some(header),
            entries,
            has_more,
        })
    }

    /// A page of `fsck` below a path of one nameservice (mount points below it are their
    /// own nameservices' business: `fsck` them by their paths).
    async fn fsck(
        &self,
        path: NsPath,
        req: pb::FsckRequest,
    ) -> Result<pb::FsckResponse, RouterError> {
        let r = self.resolve(&path).await?;
        let after = if req.after.is_empty() {
            String::new()
        } else {
            let after = paths::parse(&req.after)?;
            rebase(&after, &path, &r.path)
                .ok_or_else(|| RouterError::InvalidPath {
                    path: req.after.clone(),
                    why: format!("not below {path}"),
                })?
                .to_string()
        };
        let fwd = pb::FsckRequest {
            header: self.header_for(&r.nameservice),
            path: r.path.to_string(),
            after,
            ..req
        };
        let mut a = self
            .send(
                &r.nameservice,
                self.observer_read(&r.nameservice),
                fwd,
                |mut c, r| async move { c.fsck(r).await },
            )
            .await?;
        for f in a.unhealthy.iter_mut().chain(a.all.iter_mut()) {
            f.path = back(&f.path, &r.path, &path);
        }
        if !a.next_after.is_empty() {
            a.next_after = back(&a.next_after, &r.path, &path);
        }
        a.header = Some(self.answered([(&r.nameservice, state_of(a.header.as_ref()))]));
        Ok(a)
    }
}

fn state_of(h: Option<&pb::ResponseHeader>) -> u64 {
    h.map_or(0, |h| h.state_id)
}

fn is_read_only(e: &RouterError) -> bool {
    matches!(e, RouterError::Upstream { source, .. } if source.is(pb::ErrorKind::ReadOnly))
}

fn is_not_found(e: &RouterError) -> bool {
    matches!(e, RouterError::Upstream { source, .. } if source.is(pb::ErrorKind::NotFound))
}

impl Call<'_> {
    /// A read of one path on its nameservice: the request gets the nameservice's path and
    /// header (`set`), the answer the nameservice's state ID (`header`) and, where it holds
    /// an inode, the mount point's name (`inode`).
    async fn read_path<Req, Resp, F, Fut>(
        &self,
        path: &str,
        req: Req,
        set: impl FnOnce(&mut Req, Option<pb::RequestHeader>, String),
        rpc: F,
        answer: impl FnOnce(&mut Resp) -> (&mut Option<pb::ResponseHeader>, Option<&mut pb::Inode>),
    ) -> Result<Resp, RouterError>
    where
        Req: Clone,
        F: Fn(NamespaceClient<Rpc>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let path = paths::parse(path)?;
        let r = self.resolve(&path).await?;
        let mut req = req;
        set(
            &mut req,
            self.header_for(&r.nameservice),
            r.path.to_string(),
        );
        let mut a = self
            .send(&r.nameservice, self.observer_read(&r.nameservice), req, rpc)
            .await?;
        let (header, inode) = answer(&mut a);
        if let Some(i) = inode {
            name_as_mounted(i, &path);
        }
        *header = Some(self.answered([(&r.nameservice, state_of(header.as_ref()))]));
        Ok(a)
    }

    /// A mutation, routed and forwarded; a mount-table edit answers with the table read
    /// after it (or, when that read failed, the edit's state: every router reads the table
    /// at least that new before this client's next call).
    async fn mutate(&self, op: Option<Op>) -> Result<pb::MutateResponse, RouterError> {
        let mut op = op.ok_or(RouterError::InvalidArgument(
            "a mutation without an operation",
        ))?;
        let original = op.clone();
        let route = self.route_mutation(&mut op).await?;
        let keeps_table = matches!(
            op,
            Op::MountAdd(_) | Op::MountRemove(_) | Op::MountMove(_) | Op::SetDefaultNameservice(_)
        );
        let mut answer = match route {
            Route::Touched => self.mutate_touched(op).await?,
            Route::To(ns, path) => {
                tracing::Span::current().record("ns", ns.as_str());
                let (mut a, path) = match self.mutate_on(&ns, op).await {
                    Err(e) if is_read_only(&e) => self.moved_since(original, &ns, e).await?,
                    r => (r?, path),
                };
                if let (Some(i), Some(p)) = (a.inode.as_mut(), path) {
                    name_as_mounted(i, &p);
                }
                a
            }
        };
        if keeps_table {
            let edited_at = answer.header.as_ref().map_or(0, |h| h.state_id);
            if let Err(e) = self.router.table.refresh(edited_at).await {
                tracing::warn!(error = %e, "re-reading the mount table after an edit");
            }
            let table_at = self.router.table.read_at().max(edited_at);
            if let Some(h) = answer.header.as_mut() {
                h.state_ids
                    .insert(state_ids::TABLE_ENTRY.to_owned(), table_at);
            }
        }
        Ok(answer)
    }

    /// A mutation that nameservice `ns` refused as read-only (a `balance` of its path is
    /// in its window, or has just moved the mount): the table is read again and, if the
    /// path now leads to another nameservice, the call goes there (it changed nothing at
    /// `ns`); else the refusal stands, for the client to retry.
    async fn moved_since(
        &self,
        op: Op,
        ns: &NameserviceId,
        refused: RouterError,
    ) -> Result<(pb::MutateResponse, Option<NsPath>), RouterError> {
        if let Err(e) = self.router.table.refresh(self.table_seen()).await {
            tracing::warn!(error = %e, "re-reading the mount table after a read-only refusal");
            return Err(refused);
        }
        let mut op = op;
        match self.route_mutation(&mut op).await? {
            Route::To(now, path) if now != *ns => {
                tracing::Span::current().record("ns", now.as_str());
                Ok((self.mutate_on(&now, op).await?, path))
            }
            _ => Err(refused),
        }
    }

    /// The mount table, read on its keeper at this caller's state ID of it.
    async fn get_mount_table(&self) -> Result<pb::GetMountTableResponse, RouterError> {
        let keeper = self.router.table.keeper();
        let req = pb::GetMountTableRequest {
            header: self.header_for(keeper),
        };
        let mut a = self
            .send(
                keeper,
                self.observer_read(keeper),
                req,
                |mut c, r| async move { c.get_mount_table(r).await },
            )
            .await?;
        a.header = Some(self.answered([(keeper, state_of(a.header.as_ref()))]));
        Ok(a)
    }
}

impl RouterService {
    /// An answer, or the refusal as a status that also names the mount table the call was
    /// routed by (`@mount-table`: a client is never routed by an older one afterwards, on
    /// any router, whether its call succeeded or not).
    fn reply<T>(
        &self,
        method: &'static str,
        call: &Call<'_>,
        started: Instant,
        r: Result<T, RouterError>,
    ) -> Result<Response<T>, Status> {
        let reached = call
            .reached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join(",");
        self.router
            .metrics
            .call(method, &reached, r.is_ok(), started.elapsed());
        r.map(Response::new).map_err(|e| {
            let status = Status::from(e);
            let table_at = self.router.table.read_at();
            match raftfs_proto::detail_of(&status) {
                Some(mut detail) if table_at > 0 => {
                    detail
                        .state_ids
                        .insert(state_ids::TABLE_ENTRY.to_owned(), table_at);
                    raftfs_proto::status_with_detail(status.code(), detail)
                }
                _ => status,
            }
        })
    }
}

#[tonic::async_trait]
impl Namespace for RouterService {
    #[tracing::instrument(skip_all, fields(op, ns))]
    async fn mutate(
        &self,
        request: Request<pb::MutateRequest>,
    ) -> Result<Response<pb::MutateResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let req = request.into_inner();
        let call = self.call(user, req.header);
        self.reply("mutate", &call, started, call.mutate(req.op).await)
    }

    #[tracing::instrument(skip_all, fields(path))]
    async fn stat(
        &self,
        request: Request<pb::StatRequest>,
    ) -> Result<Response<pb::StatResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let req = request.into_inner();
        let call = self.call(user, req.header);
        let r = match paths::parse(&req.path) {
            Ok(path) => call.stat(path).await,
            Err(e) => Err(e),
        };
        self.reply("stat", &call, started, r)
    }

    #[tracing::instrument(skip_all, fields(path))]
    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let mut req = request.into_inner();
        let call = self.call(user, req.header.take());
        let r = match paths::parse(&req.path) {
            Ok(path) => call.list(path, req).await,
            Err(e) => Err(e),
        };
        self.reply("list", &call, started, r)
    }

    #[tracing::instrument(skip_all, fields(path))]
    async fn content_summary(
        &self,
        request: Request<pb::ContentSummaryRequest>,
    ) -> Result<Response<pb::ContentSummaryResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let mut req = request.into_inner();
        let call = self.call(user, req.header.take());
        let path = req.path.clone();
        let r = call
            .read_path(
                &path,
                req,
                |r, h, p| (r.header, r.path) = (h, p),
                |mut c, r| async move { c.content_summary(r).await },
                |a| (&mut a.header, None),
            )
            .await;
        self.reply("content_summary", &call, started, r)
    }

    #[tracing::instrument(skip_all, fields(path))]
    async fn snapshot_diff(
        &self,
        request: Request<pb::SnapshotDiffRequest>,
    ) -> Result<Response<pb::SnapshotDiffResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let mut req = request.into_inner();
        let call = self.call(user, req.header.take());
        let path = req.path.clone();
        let r = call
            .read_path(
                &path,
                req,
                |r, h, p| (r.header, r.path) = (h, p),
                |mut c, r| async move { c.snapshot_diff(r).await },
                |a| (&mut a.header, None),
            )
            .await;
        self.reply("snapshot_diff", &call, started, r)
    }

    #[tracing::instrument(skip_all, fields(path))]
    async fn get_xattrs(
        &self,
        request: Request<pb::GetXattrsRequest>,
    ) -> Result<Response<pb::GetXattrsResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let mut req = request.into_inner();
        let call = self.call(user, req.header.take());
        let path = req.path.clone();
        let r = call
            .read_path(
                &path,
                req,
                |r, h, p| (r.header, r.path) = (h, p),
                |mut c, r| async move { c.get_xattrs(r).await },
                |a| (&mut a.header, None),
            )
            .await;
        self.reply("get_xattrs", &call, started, r)
    }

    #[tracing::instrument(skip_all)]
    async fn msync(
        &self,
        request: Request<pb::MsyncRequest>,
    ) -> Result<Response<pb::MsyncResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let call = self.call(user, request.into_inner().header);
        self.reply("msync", &call, started, call.msync().await)
    }

    #[tracing::instrument(skip_all, fields(path))]
    async fn get_blocks(
        &self,
        request: Request<pb::GetBlocksRequest>,
    ) -> Result<Response<pb::GetBlocksResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let mut req = request.into_inner();
        let call = self.call(user, req.header.take());
        let path = req.path.clone();
        let r = call
            .read_path(
                &path,
                req,
                |r, h, p| (r.header, r.path) = (h, p),
                |mut c, r| async move { c.get_blocks(r).await },
                |a| (&mut a.header, a.inode.as_mut()),
            )
            .await;
        self.reply("get_blocks", &call, started, r)
    }

    async fn report_corrupt(
        &self,
        _request: Request<pb::ReportCorruptRequest>,
    ) -> Result<Response<pb::ReportCorruptResponse>, Status> {
        Err(RouterError::NotThroughRouter("a corrupt copy is reported by its blockserver").into())
    }

    #[tracing::instrument(skip_all, fields(path))]
    async fn fsck(
        &self,
        request: Request<pb::FsckRequest>,
    ) -> Result<Response<pb::FsckResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let mut req = request.into_inner();
        let call = self.call(user, req.header.take());
        let r = match paths::parse(&req.path) {
            Ok(path) => call.fsck(path, req).await,
            Err(e) => Err(e),
        };
        self.reply("fsck", &call, started, r)
    }

    #[tracing::instrument(skip_all)]
    async fn get_mount_table(
        &self,
        request: Request<pb::GetMountTableRequest>,
    ) -> Result<Response<pb::GetMountTableResponse>, Status> {
        let started = Instant::now();
        let user = claim(&request)?;
        let call = self.call(user, request.into_inner().header);
        self.reply(
            "get_mount_table",
            &call,
            started,
            call.get_mount_table().await,
        )
    }
}

fn not_through_router<T>(what: &'static str) -> Result<Response<T>, Status> {
    Err(RouterError::NotThroughRouter(what).into())
}

/// A router's `Admin`: it has no members and no observers of its own (a client in observer
/// mode then sends its reads to the router, which picks each nameservice's observers); the
/// rest is each nameservice's.
#[tonic::async_trait]
impl Admin for RouterService {
    async fn cluster_status(
        &self,
        _: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        not_through_router("cluster status")
    }
    async fn node_status(
        &self,
        _: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusResponse>, Status> {
        not_through_router("node status")
    }
    async fn members(
        &self,
        _: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        Ok(Response::new(pb::MembersResponse::default()))
    }
    async fn add_observer(
        &self,
        _: Request<pb::AddObserverRequest>,
    ) -> Result<Response<pb::MembershipChangeResponse>, Status> {
        not_through_router("membership")
    }
    async fn remove_member(
        &self,
        _: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipChangeResponse>, Status> {
        not_through_router("membership")
    }
    async fn promote_member(
        &self,
        _: Request<pb::PromoteMemberRequest>,
    ) -> Result<Response<pb::MembershipChangeResponse>, Status> {
        not_through_router("membership")
    }
    async fn transfer_leader(
        &self,
        _: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::MembershipChangeResponse>, Status> {
        not_through_router("membership")
    }
    async fn checkpoint(
        &self,
        _: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        not_through_router("checkpoint")
    }
    async fn list_block_servers(
        &self,
        _: Request<pb::ListBlockServersRequest>,
    ) -> Result<Response<pb::ListBlockServersResponse>, Status> {
        not_through_router("the blockserver list")
    }
    async fn reconstruction_status(
        &self,
        _: Request<pb::ReconstructionStatusRequest>,
    ) -> Result<Response<pb::ReconstructionStatusResponse>, Status> {
        not_through_router("reconstruction status")
    }
}
