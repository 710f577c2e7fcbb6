//! The `BlockServers` service: registration, heartbeats and block reports from blockservers
//! (DESIGN §6). Every metaserver serves it (active, standbys and observers alike), so that
//! each keeps its own soft-state [`Registry`](crate::registry::Registry) and a new active knows
//! where the blocks are without waiting for reports.
//!
//! Only the active decides that a reported block is garbage (its group was deleted): a standby
//! may simply not have applied the group's creation yet.

use raftfs_core::block_token::Mode;
use raftfs_core::id::{BlockServerId, Generation, GroupId, TaskId};
use raftfs_core::identity::Need;
use raftfs_core::reconstruction::{ReconstructionTask, TaskOutcome};
use std::time::Instant;

use raftfs_proto as pb;
use raftfs_proto::block_servers_server::BlockServers;
use tonic::{Request, Response, Status};

use super::convert;
use crate::block_tokens;
use crate::error::MetaError;
use crate::namespace::blocks;
use crate::node::MetaNode;
use crate::observer::Role;
use crate::redundancy::{heartbeat, measured};
use crate::registry::{Reported, Storage};

/// The `BlockServers` gRPC service.
#[derive(Debug, Clone)]
pub struct BlockServersService {
    node: MetaNode,
}

impl BlockServersService {
    pub fn new(node: MetaNode) -> Self {
        Self { node }
    }

    fn finish<T>(
        &self,
        method: &'static str,
        start: Instant,
        r: Result<T, MetaError>,
    ) -> Result<Response<T>, Status> {
        self.node.finish_rpc(method, start, r)
    }

    /// On the active: queues the deletion of reported blocks whose group no longer exists.
    async fn collect_garbage(
        &self,
        node_id: u64,
        reported: Vec<Reported>,
    ) -> Result<(), MetaError> {
        if reported.is_empty() || self.node.role() != Role::Active {
            return Ok(());
        }
        let garbage = self
            .node
            .read_local(move |kv| -> Result<Vec<Reported>, MetaError> {
                let mut out = Vec::new();
                for r in reported {
                    if blocks::deleted(kv, r.group)? {
                        out.push(r);
                    }
                }
                Ok(out)
            })
            .await?;
        for r in garbage {
            tracing::debug!(
                node_id,
                group = %r.group,
                index = r.index,
                "block of a deleted group"
            );
            self.node.blocks.registry.queue_delete(
                BlockServerId(node_id),
                r.group,
                r.index,
                r.generation,
            );
        }
        Ok(())
    }

    /// Each task's group generation, read on this member. A task whose generation cannot be
    /// read (one damaged value, or the whole read failing) is not sent: it is reported back
    /// to the scheduler as failed at once, so it is scheduled again (to this server or
    /// another) instead of holding its slot until it times out.
    async fn task_generations(
        &self,
        node_id: u64,
        tasks: Vec<ReconstructionTask>,
    ) -> (Vec<ReconstructionTask>, Vec<Generation>) {
        if tasks.is_empty() {
            return (tasks, Vec::new());
        }
        let groups: Vec<GroupId> = tasks.iter().map(|t| t.group).collect();
        let read = self
            .node
            .read_local(
                move |kv| -> Result<Vec<Result<Generation, String>>, MetaError> {
                    Ok(groups
                        .iter()
                        .map(|g| blocks::generation(kv, *g).map_err(|e| e.to_string()))
                        .collect())
                },
            )
            .await;
        let read = match read {
            Ok(read) => read,
            Err(e) => vec![Err(e.to_string()); tasks.len()],
        };
        let mut sent = Vec::with_capacity(tasks.len());
        let mut generations = Vec::with_capacity(tasks.len());
        let mut unsent = Vec::new();
        for (task, generation) in tasks.into_iter().zip(read) {
            match generation {
                Ok(g) => {
                    sent.push(task);
                    generations.push(g);
                }
                Err(error) => {
                    tracing::warn!(group = %task.group, index = task.index, %error,
                        "no generation for the task: not sent");
                    unsent.push(TaskOutcome {
                        task_id: task.id,
                        group: task.group,
                        index: task.index,
                        error: Some(format!("generation unreadable: {error}")),
                    });
                }
            }
        }
        if !unsent.is_empty() {
            self.node
                .blocks
                .scheduler
                .finished(BlockServerId(node_id), &unsent);
        }
        (sent, generations)
    }
}

fn storage(s: Option<pb::StorageReport>) -> Storage {
    let s = s.unwrap_or_default();
    Storage {
        capacity: s.capacity,
        used: s.used,
        available: s.available,
        volumes: s.volumes,
        failed_volumes: s.failed_volumes,
        xmits_in_progress: s.xmits_in_progress,
        pool_used: s.pool_used,
    }
}

fn reported(blocks: &[pb::ReportedBlock]) -> Vec<Reported> {
    blocks
        .iter()
        .map(|b| Reported {
            group: GroupId(b.group),
            index: b.index,
            length: b.length,
            // 0: a blockserver of before generation stamps, whose blocks are all the first.
            generation: Generation(b.generation.max(1)),
        })
        .collect()
}

#[tonic::async_trait]
impl BlockServers for BlockServersService {
    #[tracing::instrument(skip_all, fields(node_id, addr, rack))]
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let start = Instant::now();
        if let Err(e) = self.node.authorize(
            &req,
            Need::BlockServer(BlockServerId(req.get_ref().node_id)),
        ) {
            return self.finish("register", start, Err(e));
        }
        let req = req.into_inner();
        let span = tracing::Span::current();
        span.record("node_id", req.node_id);
        span.record("addr", req.addr.as_str());
        span.record("rack", req.rack.as_str());
        let ours = self.node.nameservice_name();
        if req.nameservice != ours {
            let wrong = MetaError::WrongNameservice {
                ours: ours.to_owned(),
                theirs: req.nameservice,
            };
            return self.finish("register", start, Err(wrong));
        }
        let r = self
            .node
            .blocks
            .registry
            .register(
                BlockServerId(req.node_id),
                &req.addr,
                &req.rack,
                storage(req.storage),
            )
            .map(|()| {
                tracing::info!("blockserver registered");
                pb::RegisterResponse {
                    metaserver_id: self.node.id.get(),
                    nameservice: ours.to_owned(),
                }
            })
            .map_err(MetaError::from);
        self.finish("register", start, r)
    }

    #[tracing::instrument(skip_all, fields(node_id))]
    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let start = Instant::now();
        if let Err(e) = self.node.authorize(
            &req,
            Need::BlockServer(BlockServerId(req.get_ref().node_id)),
        ) {
            return self.finish("heartbeat", start, Err(e));
        }
        let req = req.into_inner();
        tracing::Span::current().record("node_id", req.node_id);
        let storage = storage(req.storage);
        let blocks = &self.node.blocks;
        let node = BlockServerId(req.node_id);
        let finished: Vec<_> = req
            .finished
            .into_iter()
            .map(convert::task_outcome)
            .collect();
        let reads: Vec<(String, u64)> = req
            .reconstruction_read
            .into_iter()
            .map(|r| (r.rack, r.bytes))
            .collect();
        if let Err(e) = measured::check(&reads) {
            let e = MetaError::InvalidArgument(e.to_string());
            return self.finish("heartbeat", start, Err(e));
        }
        let reply = match heartbeat::receive(
            &blocks.registry,
            &blocks.scheduler,
            node,
            storage,
            &finished,
        ) {
            Ok(delete) => {
                let now_ms = raftfs_runtime::simulation::now_ms();
                blocks
                    .measured
                    .record(node, now_ms, reads.into_iter().collect());
                let ring = match self.node.key_cache.get(&self.node).await {
                    Ok(ring) => ring,
                    Err(e) => return self.finish("heartbeat", start, Err(e)),
                };
                // Read with the role: a reply says in which term its sender was active.
                let (role, term) = self.node.role_in_term();
                // An active cut off from its quorum may have been replaced: it gives no
                // orders (the fence would not stop them where no reply of the new active
                // has arrived yet).
                let active = role == Role::Active && self.node.ensure_active_for_read().is_ok();
                let (tasks, throttle, cancel) = if active {
                    let o = heartbeat::orders(
                        &blocks.registry,
                        &blocks.scheduler,
                        node,
                        storage.xmits_in_progress,
                        term,
                    );
                    (o.tasks, Some(convert::node_throttle(&o.throttle)), o.cancel)
                } else {
                    (Vec::new(), None, Vec::new())
                };
                if !tasks.is_empty() {
                    tracing::info!(tasks = tasks.len(), "reconstruction tasks handed out");
                }
                // Each task's token names its group's generation: the new block is stamped
                // with it, and the sources are read at it (a closed group's never changes).
                let (tasks, generations) = self.task_generations(req.node_id, tasks).await;
                pb::HeartbeatResponse {
                    reregister: false,
                    delete: delete
                        .into_iter()
                        .map(|(group, index, generation)| pb::ReportedBlock {
                            group: group.into(),
                            index,
                            length: 0,
                            generation: generation.get(),
                        })
                        .collect(),
                    tasks: tasks
                        .iter()
                        .zip(generations)
                        .map(|(t, generation)| {
                            let token = block_tokens::for_nodes(
                                &ring,
                                &self.node.tokens,
                                self.node.pool(),
                                (t.group, generation),
                                &[Mode::Read],
                                &[],
                            );
                            convert::reconstruction_task(t, token)
                        })
                        .collect(),
                    throttle,
                    cancel: cancel.into_iter().map(TaskId::get).collect(),
                    keys: convert::block_keys(&ring),
                    term,
                    active,
                }
            }
            Err(crate::registry::RegistryError::UnknownNode(_)) => pb::HeartbeatResponse {
                reregister: true,
                ..Default::default()
            },
            Err(e) => return self.finish("heartbeat", start, Err(e.into())),
        };
        self.finish("heartbeat", start, Ok(reply))
    }

    #[tracing::instrument(skip_all, fields(node_id, full, part, parts, blocks))]
    async fn block_report(
        &self,
        req: Request<pb::BlockReportRequest>,
    ) -> Result<Response<pb::BlockReportResponse>, Status> {
        let start = Instant::now();
        if let Err(e) = self.node.authorize(
            &req,
            Need::BlockServer(BlockServerId(req.get_ref().node_id)),
        ) {
            return self.finish("block_report", start, Err(e));
        }
        let req = req.into_inner();
        let span = tracing::Span::current();
        span.record("node_id", req.node_id);
        span.record("full", req.full);
        span.record("part", req.part);
        span.record("parts", req.parts);
        span.record("blocks", req.blocks.len());
        let added = reported(&req.blocks);
        let registry = &self.node.blocks.registry;
        let result = if req.full {
            registry
                .full_report_part(
                    BlockServerId(req.node_id),
                    req.report_id,
                    req.part,
                    req.parts,
                    &added,
                )
                .map(|_| ())
        } else {
            registry.incremental(BlockServerId(req.node_id), &added, &reported(&req.removed))
        };
        let r = match result {
            Ok(()) => match self.collect_garbage(req.node_id, added).await {
                Ok(()) => Ok(pb::BlockReportResponse { reregister: false }),
                Err(e) => Err(e),
            },
            Err(crate::registry::RegistryError::UnknownNode(_)) => {
                Ok(pb::BlockReportResponse { reregister: true })
            }
            Err(e) => Err(e.into()),
        };
        self.finish("block_report", start, r)
    }
}
