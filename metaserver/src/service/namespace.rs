//! The client-facing `Namespace` service. Mutations go through the proposer into the
//! journal; reads are served by the active from a consistent view of its state machine. Every
//! response carries the state ID it reflects.

use raftfs_core::block_token::Mode;
use raftfs_core::id::{BlockServerId, Generation, GroupId};
use raftfs_core::identity::{Caller, Need};
use raftfs_core::namespace::permission::{self, Access, ReadAccess};
use raftfs_core::namespace::upgrade::UpgradeStep;
use std::time::Instant;

use raftfs_proto as pb;
use raftfs_proto::namespace_server::Namespace;
use tonic::{Request, Response, Status};

use super::convert;
use crate::block_tokens;
use crate::error::MetaError;
use crate::journal::Proposal;
use crate::journal::rocks::SnapshotKv;
use crate::journal::state_machine::applied_index_in;
use crate::lease_recovery;
use crate::namespace::blocks::{self, BlockGroup};
use crate::namespace::{ApplyError, Inode, NsError, NsPath, Op, OpOutput, StoragePolicy, tree};
use crate::namespace::{block_keys, mounts, snapshot};
use crate::node::MetaNode;
use crate::placement;
use crate::redundancy as health;
use crate::registry::Replica;

/// Largest page a `List` returns.
pub const MAX_LIST_PAGE: u32 = 10_000;
/// Page size when the client does not say.
pub const DEFAULT_LIST_PAGE: u32 = 1_000;

/// Most block groups one `get_blocks` reply carries (a request may ask for fewer): about
/// 0.5 MB for RS-6-3 groups, well under the 4 MiB message limit; a reader asks for the next
/// page from where this one ends.
const GET_BLOCKS_MAX: usize = 1024;

/// The `Namespace` gRPC service.
#[derive(Debug, Clone)]
pub struct NamespaceService {
    node: MetaNode,
}

impl NamespaceService {
    pub fn new(node: MetaNode) -> Self {
        Self { node }
    }

    /// Whether this member may answer a read whose client has seen the state in `header`
    /// (waiting, within bounds, to apply it): the state ID the answer must reach.
    async fn admit_read(&self, header: Option<&pb::RequestHeader>) -> Result<u64, MetaError> {
        let last_seen = header.map_or(0, |h| h.last_seen_state_id);
        let observer_read = header.is_some_and(|h| h.observer_read);
        self.node.ready_for_read(last_seen, observer_read).await?;
        Ok(last_seen)
    }

    /// Runs `f` on a consistent view of the state machine; returns its result and the state
    /// ID of that view. Runs on the active and on observers alike: see
    /// [`MetaNode::ready_for_read`] for who may answer, and when.
    async fn read<T: Send + 'static>(
        &self,
        header: Option<&pb::RequestHeader>,
        f: impl FnOnce(&SnapshotKv<'_>) -> Result<T, ApplyError> + Send + 'static,
    ) -> Result<(T, u64), MetaError> {
        let last_seen = self.admit_read(header).await?;
        let node = self.node.clone();
        let read = raftfs_runtime::simulation::blocking(move || view(&node, last_seen, f))
            .await
            .map_err(|e| MetaError::Internal(format!("read task: {e}")))?;
        record_state_id(&read);
        read
    }

    /// [`Self::read`] for the long reads (a page of `fsck`, a content summary): they run on
    /// the member's long-read threads, not on the blocking pool the log's writes use.
    async fn read_long<T: Send + 'static>(
        &self,
        header: Option<&pb::RequestHeader>,
        f: impl FnOnce(&SnapshotKv<'_>) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<(T, u64), MetaError> {
        let last_seen = self.admit_read(header).await?;
        let node = self.node.clone();
        let read = self
            .node
            .long_reads
            .run(move || view(&node, last_seen, f))
            .await
            .map_err(|e| MetaError::Unavailable(e.to_string()))?;
        record_state_id(&read);
        read
    }

    /// Who a namespace call runs as: the authenticated caller, a superuser when it is the
    /// configured superuser or in the admin group (HDFS's superuser group) in its own name.
    fn access<T>(&self, req: &Request<T>) -> Result<Access, MetaError> {
        let caller = self.node.authorize(req, Need::User)?;
        Ok(self.access_of(&caller))
    }

    fn access_of(&self, caller: &Caller) -> Access {
        match caller.principal.user() {
            Some(user) => Access {
                user: user.name.clone(),
                groups: user.groups.clone(),
                superuser: self.node.authorizer.is_admin(caller),
                machine: String::new(),
            },
            None => Access {
                user: caller.name(),
                groups: Vec::new(),
                superuser: false,
                machine: String::new(),
            },
        }
    }

    /// What the caller creates is its own (the owner a request names is ignored), with the
    /// configured umask taken off the mode it asks for; and the lease a writer holds is
    /// named under the caller, so that another caller who learns a holder's name (`stat`
    /// shows it) can neither complete, extend nor renew that writer's file.
    fn as_owner(&self, mut op: Op, access: &Access) -> Op {
        let umask = self.node.umask;
        match &mut op {
            Op::Mkdir {
                owner, permission, ..
            } => {
                owner.clone_from(&access.user);
                *permission &= !umask;
            }
            Op::Create {
                owner,
                permission,
                holder,
                ..
            } => {
                owner.clone_from(&access.user);
                *permission &= !umask;
                *holder = scoped_holder(access, holder);
            }
            Op::Append { holder, .. }
            | Op::Complete { holder, .. }
            | Op::AddBlock { holder, .. }
            | Op::RenewLease { holder } => *holder = scoped_holder(access, holder),
            Op::Symlink { owner, .. } => owner.clone_from(&access.user),
            _ => {}
        }
        op
    }

    async fn mutate_inner(
        &self,
        who: &Caller,
        req: pb::MutateRequest,
        machine: Option<std::net::IpAddr>,
    ) -> Result<pb::MutateResponse, MetaError> {
        let caller = convert::caller(req.header.as_ref())?;
        let exclude = match &req.op {
            Some(pb::mutate_request::Op::AddBlock(a)) => convert::block_servers(&a.exclude_nodes),
            _ => Vec::new(),
        };
        let op = convert::op(req.op)?;
        let span = tracing::Span::current();
        span.record("op", op.name());
        // Refused before the journal: an entry is applied on every member once committed.
        op.check_bounds().map_err(|source| MetaError::Namespace {
            source,
            state_id: 0,
        })?;
        self.node.ensure_active_for_write()?;
        // A level this active's own binary does not write would stop it, and every member
        // like it, once applied: refused before the journal (`metactl upgrade finalize`
        // checks every member's binary first).
        if let Op::Upgrade(UpgradeStep::Finalize { to }) = &op
            && !to.supported()
        {
            return Err(MetaError::Namespace {
                source: NsError::InvalidArgument(format!(
                    "format level {to}: this active's binary writes levels up to {}",
                    raftfs_core::level::Level::NEWEST
                )),
                state_id: 0,
            });
        }
        let mut access = self.access_of(who);
        // The caller's machine goes into the entry only once every member reads it (format
        // level 2, batch version 3: DESIGN §11).
        if self.node.sm.level() >= raftfs_core::level::Level(2) {
            access.machine = machine.map(|ip| ip.to_string()).unwrap_or_default();
        }
        let op = self.as_owner(op, &access);
        // The operations whose preparation reads the namespace (and asks blockservers) are
        // checked before it too, so that it tells a caller nothing it may not see; the check
        // in the apply remains the one that decides.
        if !access.superuser && matches!(op, Op::AddBlock { .. } | Op::RecoverLease { .. }) {
            let (a, o) = (access.clone(), op.clone());
            self.node
                .read_local(move |kv| permission::check_op(kv, &a, &o))
                .await?;
        }
        let op = self.prepare(op, &exclude).await?;
        let proposal = Proposal {
            client: caller.client.scoped_to(&who.principal.to_string()),
            call_id: caller.call_id,
            op,
            access: Some(access),
        };
        let (state_id, result) = self.node.proposer.propose(proposal).await?;
        span.record("state_id", state_id);
        match result {
            Ok(out) => {
                let mut response = convert::output(&out, state_id);
                if let OpOutput::Group(file, group) = &out {
                    // The writer's token: write the group's internal blocks, and read them
                    // back (a writer measures what it wrote when it resumes).
                    let ring = block_tokens::signing_keys(&self.node, &self.node.tokens).await?;
                    let modes = [Mode::Write, Mode::Read];
                    // A new group is at its first generation; its blocks go to its targets.
                    let generation = Generation::FIRST;
                    let token = block_tokens::for_caller(
                        &ring,
                        &self.node.tokens,
                        self.node.pool(),
                        who,
                        (group.id, generation),
                        &modes,
                        &group.targets,
                    );
                    response.block_group =
                        Some(self.wire_group(file, group, generation, false, token));
                }
                Ok(response)
            }
            Err(source) => Err(MetaError::Namespace { source, state_id }),
        }
    }

    /// Fixes on the leader what an entry needs beyond the request (DESIGN §3: the leader
    /// decides, the entry carries the decision): the default block size, the servers of a new
    /// block group, the recovered length of a dead writer's last group.
    async fn prepare(&self, op: Op, exclude: &[BlockServerId]) -> Result<Op, MetaError> {
        let mut op = op;
        if let Op::Create { block_size, .. } = &mut op
            && *block_size == 0
        {
            *block_size = self.node.blocks.tuning.default_block_size;
        }
        Ok(match op {
            Op::AddBlock {
                path,
                holder,
                file_length,
                targets: _,
            } => {
                // With the journaled admin states: a server taken out of service a moment
                // ago gets no new block, whatever the scan has read yet.
                let applied = self.node.sm.applied_index();
                let (file, admin) = {
                    let path = path.clone();
                    self.node
                        .read_local(move |kv| -> Result<_, MetaError> {
                            Ok((
                                tree::stat(kv, &path)?,
                                crate::namespace::admin_state::load(kv)?,
                            ))
                        })
                        .await?
                };
                self.node.blocks.registry.set_admin(applied, admin);
                let count = file.policy.width();
                let req = placement::Request {
                    count,
                    min: match file.policy {
                        StoragePolicy::Replicated(_) => 1,
                        StoragePolicy::ErasureCoded { .. } => count,
                    },
                    block_bytes: file.block_size,
                    exclude,
                };
                let targets = self
                    .node
                    .blocks
                    .registry
                    .snapshot()
                    .placer()
                    .choose(&req, &mut raftfs_runtime::simulation::rng())?;
                Op::AddBlock {
                    path,
                    holder,
                    file_length,
                    targets,
                }
            }
            Op::RecoverLease { path, .. } => {
                lease_recovery::prepare(&self.node, &path, None).await?
            }
            other => other,
        })
    }

    /// A group on the wire, with addresses, and (for reads) the copies that block reports
    /// show complete: at least as long as the group's layout says the internal block is.
    fn wire_group(
        &self,
        file: &Inode,
        group: &BlockGroup,
        generation: Generation,
        with_locations: bool,
        token: Vec<u8>,
    ) -> pb::BlockGroup {
        let registry = &self.node.blocks.registry;
        let replicated = matches!(file.policy, StoragePolicy::Replicated(_));
        let replicas: Vec<Replica> = if with_locations {
            let len = group.length.unwrap_or(0);
            let mut replicas: Vec<Replica> = registry
                .replicas(group.id, generation)
                .into_iter()
                .filter(|r| r.length >= health::expected_len(&file.policy, len, r.index))
                .collect();
            // Copies written but not reported yet go last: a read right after a write does
            // not wait for the blockservers' incremental reports.
            let targets: Vec<(u32, BlockServerId)> = group
                .targets
                .iter()
                .enumerate()
                .map(|(i, n)| (if replicated { 0 } else { i as u32 }, *n))
                .collect();
            for (index, node) in registry.unreported(group.id, &targets, generation) {
                replicas.push(Replica {
                    index,
                    node,
                    length: health::expected_len(&file.policy, len, index),
                    generation,
                });
            }
            replicas
        } else {
            Vec::new()
        };
        pb::BlockGroup {
            token,
            ..convert::group(
                group,
                replicated,
                |id| registry.node(BlockServerId(id)),
                &replicas,
            )
        }
    }

    fn finish<T>(
        &self,
        method: &'static str,
        start: Instant,
        r: Result<T, MetaError>,
    ) -> Result<Response<T>, Status> {
        self.node.finish_rpc(method, start, r)
    }
}

fn header(state_id: u64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        state_id,
        ..Default::default()
    })
}

/// Runs `f` on a point-in-time view of `node`'s state machine, which must hold at least
/// `last_seen` (the state-ID rule); returns `f`'s result and the view's state ID.
pub(crate) fn view<T, E: Into<MetaError>>(
    node: &MetaNode,
    last_seen: u64,
    f: impl FnOnce(&SnapshotKv<'_>) -> Result<T, E>,
) -> Result<(T, u64), MetaError> {
    let db = node.sm.db();
    let kv = SnapshotKv::new(&db);
    let state_id = applied_index_in(&kv)?;
    node.check_state_id(state_id, last_seen)?;
    let value = f(&kv).map_err(|e| match e.into() {
        MetaError::Namespace { source, .. } => MetaError::Namespace { source, state_id },
        other => other,
    })?;
    Ok((value, state_id))
}

fn record_state_id<T>(read: &Result<(T, u64), MetaError>) {
    if let Ok((_, state_id)) = read {
        tracing::Span::current().record("state_id", *state_id);
    }
}

/// A lease holder's name as the namespace keeps it: the caller's name before the one the
/// client chose.
fn scoped_holder(access: &Access, holder: &str) -> String {
    format!("{}/{holder}", access.user)
}

#[tonic::async_trait]
impl Namespace for NamespaceService {
    #[tracing::instrument(skip_all, fields(op, state_id, call_id))]
    async fn mutate(
        &self,
        req: Request<pb::MutateRequest>,
    ) -> Result<Response<pb::MutateResponse>, Status> {
        let start = Instant::now();
        let need = match &req.get_ref().op {
            Some(
                pb::mutate_request::Op::SetThrottle(_)
                | pb::mutate_request::Op::MountAdd(_)
                | pb::mutate_request::Op::MountRemove(_)
                | pb::mutate_request::Op::MountMove(_)
                | pb::mutate_request::Op::Freeze(_)
                | pb::mutate_request::Op::SetAdminState(_)
                | pb::mutate_request::Op::Upgrade(_)
                | pb::mutate_request::Op::SetDefaultNameservice(_),
            ) => Need::Admin,
            _ => Need::User,
        };
        let who = match self.node.authorize(&req, need) {
            Ok(who) => who,
            Err(e) => return self.finish("mutate", start, Err(e)),
        };
        let machine = req.remote_addr().map(|a| a.ip());
        let req = req.into_inner();
        tracing::Span::current().record("call_id", req.header.as_ref().map_or(0, |h| h.call_id));
        let r = self.mutate_inner(&who, req, machine).await;
        self.finish("mutate", start, r)
    }

    #[tracing::instrument(skip_all, fields(path, state_id))]
    async fn stat(
        &self,
        req: Request<pb::StatRequest>,
    ) -> Result<Response<pb::StatResponse>, Status> {
        let start = Instant::now();
        let access = self.access(&req);
        let req = req.into_inner();
        tracing::Span::current().record("path", req.path.as_str());
        let r = async {
            let path = convert::path(&req.path)?;
            let access = access?;
            let (inode, state_id) = self
                .read(req.header.as_ref(), move |kv| {
                    if let Some(dir) = snapshot::stat_snapshots(kv, &path)? {
                        permission::check_read(kv, &access, &path, ReadAccess::Stat)?;
                        return Ok(dir);
                    }
                    snapshot::read(kv, &path, |kv, path| {
                        permission::check_read(kv, &access, path, ReadAccess::Stat)?;
                        tree::stat(kv, path)
                    })
                })
                .await?;
            Ok(pb::StatResponse {
                header: header(state_id),
                inode: Some(convert::inode(&inode)),
            })
        }
        .await;
        self.finish("stat", start, r)
    }

    #[tracing::instrument(skip_all, fields(path, state_id))]
    async fn snapshot_diff(
        &self,
        req: Request<pb::SnapshotDiffRequest>,
    ) -> Result<Response<pb::SnapshotDiffResponse>, Status> {
        let start = Instant::now();
        let access = self.access(&req);
        let req = req.into_inner();
        tracing::Span::current().record("path", req.path.as_str());
        let r = async {
            let access = access?;
            let path = convert::path(&req.path)?;
            let limit = match req.limit {
                0 => DEFAULT_LIST_PAGE,
                n => n.min(MAX_LIST_PAGE),
            } as usize;
            let (from, to, cursor) = (req.from, req.to, req.cursor);
            let (page, state_id) = self
                .read_long(req.header.as_ref(), move |kv| {
                    permission::check_read(kv, &access, &path, ReadAccess::List)?;
                    let cursor = (!cursor.is_empty()).then_some(cursor.as_slice());
                    Ok(snapshot::diff(kv, &path, &from, &to, cursor, limit)?)
                })
                .await?;
            Ok(pb::SnapshotDiffResponse {
                header: header(state_id),
                entries: page.entries.iter().map(convert::diff_entry).collect(),
                cursor: page.cursor.unwrap_or_default(),
            })
        }
        .await;
        self.finish("snapshot_diff", start, r)
    }

    #[tracing::instrument(skip_all, fields(state_id))]
    async fn get_mount_table(
        &self,
        req: Request<pb::GetMountTableRequest>,
    ) -> Result<Response<pb::GetMountTableResponse>, Status> {
        let start = Instant::now();
        let access = self.access(&req);
        let req = req.into_inner();
        let r = async {
            // Any authenticated caller may read where paths live, as any may resolve them.
            access?;
            let (table, state_id) = self
                .read(req.header.as_ref(), |kv| Ok(mounts::load(kv)?))
                .await?;
            let (entries, default_nameservice) = convert::mount_table(&table);
            Ok(pb::GetMountTableResponse {
                header: header(state_id),
                entries,
                default_nameservice,
            })
        }
        .await;
        self.finish("get_mount_table", start, r)
    }

    #[tracing::instrument(skip_all, fields(path, state_id))]
    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let start = Instant::now();
        let access = self.access(&req);
        let req = req.into_inner();
        tracing::Span::current().record("path", req.path.as_str());
        let r = async {
            let access = access?;
            let path = convert::path(&req.path)?;
            let limit = match req.limit {
                0 => DEFAULT_LIST_PAGE,
                n => n.min(MAX_LIST_PAGE),
            } as usize;
            let after = (!req.start_after.is_empty()).then_some(req.start_after);
            let ((entries, has_more), state_id) = self
                .read(req.header.as_ref(), move |kv| {
                    let after = after.as_deref();
                    if let Some(page) = snapshot::list_snapshots(kv, &path, after, limit)? {
                        permission::check_read(kv, &access, &path, ReadAccess::List)?;
                        return Ok(page);
                    }
                    snapshot::read(kv, &path, |kv, path| {
                        permission::check_read(kv, &access, path, ReadAccess::List)?;
                        tree::list(kv, path, after, limit)
                    })
                })
                .await?;
            Ok(pb::ListResponse {
                header: header(state_id),
                entries: entries.iter().map(convert::inode).collect(),
                has_more,
            })
        }
        .await;
        self.finish("list", start, r)
    }

    #[tracing::instrument(skip_all, fields(path, state_id))]
    async fn content_summary(
        &self,
        req: Request<pb::ContentSummaryRequest>,
    ) -> Result<Response<pb::ContentSummaryResponse>, Status> {
        let start = Instant::now();
        let access = self.access(&req);
        let req = req.into_inner();
        let r = async {
            let access = access?;
            let path = convert::path(&req.path)?;
            let (s, state_id) = self
                .read_long(req.header.as_ref(), move |kv| {
                    snapshot::read(kv, &path, |kv, path| {
                        permission::check_read(kv, &access, path, ReadAccess::List)?;
                        tree::content_summary(kv, path, Some(&access))
                    })
                    .map_err(MetaError::from)
                })
                .await?;
            Ok(pb::ContentSummaryResponse {
                header: header(state_id),
                directories: s.directories,
                files: s.files,
                symlinks: s.symlinks,
                length: s.length,
                space_consumed: s.space_consumed,
            })
        }
        .await;
        self.finish("content_summary", start, r)
    }

    #[tracing::instrument(skip_all, fields(path, state_id))]
    async fn get_xattrs(
        &self,
        req: Request<pb::GetXattrsRequest>,
    ) -> Result<Response<pb::GetXattrsResponse>, Status> {
        let start = Instant::now();
        let access = self.access(&req);
        let req = req.into_inner();
        let r = async {
            let access = access?;
            let path = convert::path(&req.path)?;
            let names = req.names;
            let (xattrs, state_id) = self
                .read(req.header.as_ref(), move |kv| {
                    snapshot::read(kv, &path, |kv, path| {
                        permission::check_read(kv, &access, path, ReadAccess::Read)?;
                        if let Some(name) =
                            names.iter().find(|n| !permission::user_xattr(&access, n))
                        {
                            return Err(NsError::PermissionDenied {
                                user: access.user.clone(),
                                what: format!("read attribute {name} of"),
                                path: path.to_string(),
                            }
                            .into());
                        }
                        let mut all = tree::get_xattrs(kv, path, &names)?;
                        all.retain(|(name, _)| permission::user_xattr(&access, name));
                        Ok(all)
                    })
                })
                .await?;
            Ok(pb::GetXattrsResponse {
                header: header(state_id),
                xattrs: xattrs
                    .into_iter()
                    .map(|(name, value)| pb::Xattr { name, value })
                    .collect(),
            })
        }
        .await;
        self.finish("get_xattrs", start, r)
    }

    #[tracing::instrument(skip_all, fields(path, offset, length, state_id))]
    async fn get_blocks(
        &self,
        req: Request<pb::GetBlocksRequest>,
    ) -> Result<Response<pb::GetBlocksResponse>, Status> {
        let start = Instant::now();
        let caller = self.node.authorize(&req, Need::User);
        let req = req.into_inner();
        let span = tracing::Span::current();
        span.record("path", req.path.as_str());
        span.record("offset", req.offset);
        span.record("length", req.length);
        let r = async {
            let caller = caller?;
            let access = self.access_of(&caller);
            let path = convert::path(&req.path)?;
            let (offset, length) = (req.offset, req.length);
            let limit = match usize::try_from(req.limit) {
                Ok(0) | Err(_) => GET_BLOCKS_MAX,
                Ok(n) => n.min(GET_BLOCKS_MAX),
            };
            let ((file, groups, has_more, readable, ring), state_id) = self
                .read(req.header.as_ref(), move |kv| {
                    snapshot::read(kv, &path, |kv, path| {
                        permission::check_read(kv, &access, path, ReadAccess::Read)?;
                        let file = tree::stat(kv, path)?;
                        let end = if length == 0 {
                            u64::MAX
                        } else {
                            offset.saturating_add(length)
                        };
                        let (groups, more) = blocks::in_range(kv, &file, offset, end, limit)?;
                        let groups = groups
                            .into_iter()
                            .map(|g| blocks::generation(kv, g.id).map(|generation| (generation, g)))
                            .collect::<Result<Vec<_>, _>>()?;
                        let readable = blocks::readable_length(kv, &file)?;
                        // The keys of the same view: an observer signs with what it applied.
                        let ring = block_keys::load(kv)?;
                        Ok((file, groups, more, readable, ring))
                    })
                })
                .await?;
            let tokens = &self.node.tokens;
            if !groups.is_empty()
                && ring
                    .signing_key(crate::journal::proposer::now_ms())
                    .is_none()
            {
                // A member that has applied no key yet (a cluster moments old): the client
                // retries, as for any member not ready to serve.
                return Err(MetaError::Unavailable("no block key applied yet".into()));
            }
            Ok(pb::GetBlocksResponse {
                header: header(state_id),
                inode: Some(convert::inode(&file)),
                groups: groups
                    .iter()
                    .map(|(generation, g)| {
                        let token = block_tokens::for_caller(
                            &ring,
                            tokens,
                            self.node.pool(),
                            &caller,
                            (g.id, *generation),
                            &[Mode::Read],
                            &[],
                        );
                        self.wire_group(&file, g, *generation, true, token)
                    })
                    .collect(),
                has_more,
                readable_length: readable,
            })
        }
        .await;
        self.finish("get_blocks", start, r)
    }

    #[tracing::instrument(skip_all, fields(group, index, node_id))]
    async fn report_corrupt(
        &self,
        req: Request<pb::ReportCorruptRequest>,
    ) -> Result<Response<pb::ReportCorruptResponse>, Status> {
        let start = Instant::now();
        // Only a blockserver, about its own copy: it verified the bytes itself (a reader's
        // failed read reaches the active through the blockserver that served it).
        let need = Need::BlockServer(BlockServerId(req.get_ref().node_id));
        if let Err(e) = self.node.authorize(&req, need) {
            return self.finish("report_corrupt", start, Err(e));
        }
        let req = req.into_inner();
        let span = tracing::Span::current();
        span.record("group", req.group);
        span.record("index", req.index);
        span.record("node_id", req.node_id);
        let ours = self.node.nameservice_name();
        if req.nameservice != ours {
            // Another pool's group of the same id: marking it here would condemn a good copy.
            let wrong = MetaError::WrongNameservice {
                ours: ours.to_owned(),
                theirs: req.nameservice,
            };
            return self.finish("report_corrupt", start, Err(wrong));
        }
        tracing::warn!(reason = %req.reason, "internal block reported corrupt");
        self.node.blocks.registry.mark_corrupt(
            GroupId(req.group),
            req.index,
            BlockServerId(req.node_id),
        );
        self.node.metrics.corrupt_reports().inc();
        self.finish("report_corrupt", start, Ok(pb::ReportCorruptResponse {}))
    }

    #[tracing::instrument(skip_all, fields(path, state_id))]
    async fn fsck(
        &self,
        req: Request<pb::FsckRequest>,
    ) -> Result<Response<pb::FsckResponse>, Status> {
        let start = Instant::now();
        // Every path below, with its health: for the superuser and the admin group (a
        // listing would show the names inside directories the caller may not read).
        let admin = self.node.authorize(&req, Need::Admin);
        let req = req.into_inner();
        let r = async {
            admin?;
            let path = if req.path.is_empty() {
                NsPath::root()
            } else {
                convert::path(&req.path)?
            };
            let after = if req.after.is_empty() {
                None
            } else {
                Some(convert::path(&req.after)?)
            };
            let limit = match usize::try_from(req.limit) {
                Ok(0) | Err(_) => health::FSCK_PAGE_MAX,
                Ok(n) => n.min(health::FSCK_PAGE_MAX),
            };
            let registry = self.node.blocks.registry.clone();
            let list_files = req.list_files;
            let ((report, next), state_id) = self
                .read_long(req.header.as_ref(), move |kv| {
                    health::fsck_page(kv, &registry, &path, after.as_ref(), limit, list_files)
                })
                .await?;
            let mut out = convert::fsck_report(report);
            out.header = header(state_id);
            out.next_after = next.unwrap_or_default();
            Ok(out)
        }
        .await;
        self.finish("fsck", start, r)
    }

    #[tracing::instrument(skip_all, fields(state_id))]
    async fn msync(
        &self,
        _req: Request<pb::MsyncRequest>,
    ) -> Result<Response<pb::MsyncResponse>, Status> {
        let start = Instant::now();
        let r = async {
            self.node.ensure_active()?;
            // A read-index round: confirms leadership with a quorum and waits until everything
            // committed before it is applied here.
            let read_log_id = self
                .node
                .raft
                .ensure_linearizable()
                .await
                .map_err(|e| match e {
                    openraft::error::RaftError::APIError(
                        openraft::error::CheckIsLeaderError::ForwardToLeader(_),
                    ) => MetaError::NotActive {
                        leader: self.node.leader_hint(),
                    },
                    other => MetaError::Unavailable(other.to_string()),
                })?;
            let state_id = read_log_id
                .map_or(0, |l| l.index)
                .max(self.node.sm.applied_index());
            tracing::Span::current().record("state_id", state_id);
            Ok(pb::MsyncResponse {
                header: header(state_id),
            })
        }
        .await;
        self.finish("msync", start, r)
    }
}
