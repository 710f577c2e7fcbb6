//! The `Admin` service: cluster and node status for operators (`metactl cluster status`),
//! readable by anyone the port authenticated; membership, leadership and checkpoints, for the
//! superuser and the admin group only (DESIGN §9).

use std::time::Instant;

use openraft::ServerState;
use raftfs_core::identity::Need;
use raftfs_core::level::Level;
use raftfs_core::member::MemberRole;
use raftfs_proto as pb;
use raftfs_proto::admin_server::Admin;
use tonic::{Request, Response, Status};

use crate::error::MetaError;
use crate::journal::MemberId;
use crate::membership;
use crate::namespace::upgrade::UpgradeState;
use crate::node::MetaNode;

/// The `Admin` gRPC service.
#[derive(Debug, Clone)]
pub struct AdminService {
    node: MetaNode,
}

impl AdminService {
    pub fn new(node: MetaNode) -> Self {
        Self { node }
    }

    fn node_status(&self, upgrade: UpgradeState) -> pb::NodeStatusResponse {
        let m = self.node.raft.metrics();
        let m = m.borrow();
        pb::NodeStatusResponse {
            id: self.node.id.get(),
            addr: self.node.advertise_addr.clone(),
            state: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Learner => "learner",
                ServerState::Candidate => "candidate",
                ServerState::Shutdown => "shutdown",
            }
            .to_owned(),
            term: m.current_term,
            leader: m.current_leader.map_or(0, MemberId::get),
            applied_index: self.node.sm.applied_index(),
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            purged_index: m.purged.map_or(0, |l| l.index),
            snapshots_installed: self.node.sm.snapshots_installed(),
            workers: self.workers_pb(),
            binary_version: raftfs_core::level::binary_version(),
            newest_level: u32::from(Level::NEWEST.0),
            level: u32::from(upgrade.level.0),
            upgrade_prepared_ms: upgrade.prepared_ms.unwrap_or(0),
        }
    }

    fn workers_pb(&self) -> Vec<pb::WorkerStatus> {
        self.node
            .workers
            .snapshot()
            .iter()
            .map(crate::service::convert::worker_status_pb)
            .collect()
    }

    fn finish(
        &self,
        method: &'static str,
        start: Instant,
        r: Result<membership::Changed, MetaError>,
    ) -> Result<Response<pb::MembershipChangeResponse>, Status> {
        self.node
            .metrics
            .observe_rpc(method, start.elapsed(), r.is_ok());
        r.map(|c| Response::new(change_pb(&c)))
            .map_err(Status::from)
    }

    async fn cluster_status_inner(&self) -> Result<pb::ClusterStatusResponse, MetaError> {
        self.node.ensure_active()?;
        let (term, last_log, committed, membership, replication) = {
            let m = self.node.raft.metrics();
            let m = m.borrow();
            (
                m.current_term,
                m.last_log_index.unwrap_or(0),
                m.last_applied.map_or(0, |l| l.index),
                m.membership_config.membership().clone(),
                m.replication.clone(),
            )
        };
        let voters: std::collections::BTreeSet<MemberId> = membership.voter_ids().collect();
        let mut members = Vec::new();
        for (id, node) in membership.nodes() {
            let role = if voters.contains(id) {
                MemberRole::Voter
            } else {
                MemberRole::Observer
            };
            // Ask the member itself for its applied index; fall back on what replication saw.
            let applied = if *id == self.node.id {
                Some(self.node.sm.applied_index())
            } else {
                membership::member_applied(&self.node.dialer, &node.addr).await
            };
            let matched = replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|l| l.index);
            let applied_index = applied.or(matched).unwrap_or(0);
            members.push(pb::MemberStatus {
                id: id.get(),
                addr: node.addr.clone(),
                role: role.as_str().to_owned(),
                applied_index,
                lag: last_log.saturating_sub(applied_index),
            });
        }
        Ok(pb::ClusterStatusResponse {
            leader: self.node.id.get(),
            term,
            committed_index: committed,
            members,
            workers: self.workers_pb(),
        })
    }
}

fn member_pb(m: &membership::Member) -> pb::Member {
    pb::Member {
        id: m.id.get(),
        addr: m.addr.clone(),
        role: m.role.as_str().to_owned(),
    }
}

fn change_pb(c: &membership::Changed) -> pb::MembershipChangeResponse {
    pb::MembershipChangeResponse {
        header: Some(pb::ResponseHeader {
            state_id: c.log_index,
            ..Default::default()
        }),
        leader: c.leader.get(),
        members: c.members.iter().map(member_pb).collect(),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    #[tracing::instrument(skip_all)]
    async fn cluster_status(
        &self,
        _req: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let start = Instant::now();
        let r = self.cluster_status_inner().await;
        self.node
            .metrics
            .observe_rpc("cluster_status", start.elapsed(), r.is_ok());
        r.map(Response::new).map_err(Status::from)
    }

    #[tracing::instrument(skip_all)]
    async fn members(
        &self,
        _req: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        let start = Instant::now();
        let (leader, members) = membership::members(&self.node);
        self.node
            .metrics
            .observe_rpc("members", start.elapsed(), true);
        Ok(Response::new(pb::MembersResponse {
            leader: leader.map_or(0, MemberId::get),
            members: members.iter().map(member_pb).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(id = req.get_ref().id, addr = %req.get_ref().addr))]
    async fn add_observer(
        &self,
        req: Request<pb::AddObserverRequest>,
    ) -> Result<Response<pb::MembershipChangeResponse>, Status> {
        let start = Instant::now();
        if let Err(e) = self.node.authorize(&req, Need::Admin) {
            return self.finish("add_observer", start, Err(e));
        }
        let req = req.into_inner();
        let r = membership::add_observer(&self.node, MemberId(req.id), &req.addr).await;
        self.finish("add_observer", start, r)
    }

    #[tracing::instrument(skip_all, fields(id = req.get_ref().id))]
    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipChangeResponse>, Status> {
        let start = Instant::now();
        if let Err(e) = self.node.authorize(&req, Need::Admin) {
            return self.finish("remove_member", start, Err(e));
        }
        let r = membership::remove(&self.node, MemberId(req.into_inner().id)).await;
        self.finish("remove_member", start, r)
    }

    #[tracing::instrument(skip_all, fields(id = req.get_ref().id))]
    async fn promote_member(
        &self,
        req: Request<pb::PromoteMemberRequest>,
    ) -> Result<Response<pb::MembershipChangeResponse>, Status> {
        let start = Instant::now();
        if let Err(e) = self.node.authorize(&req, Need::Admin) {
            return self.finish("promote_member", start, Err(e));
        }
        let r = membership::promote(&self.node, MemberId(req.into_inner().id)).await;
        self.finish("promote_member", start, r)
    }

    #[tracing::instrument(skip_all, fields(id = req.get_ref().id))]
    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::MembershipChangeResponse>, Status> {
        let start = Instant::now();
        if let Err(e) = self.node.authorize(&req, Need::Admin) {
            return self.finish("transfer_leader", start, Err(e));
        }
        let r = membership::transfer_leader(&self.node, MemberId(req.into_inner().id)).await;
        self.finish("transfer_leader", start, r)
    }

    #[tracing::instrument(skip_all)]
    async fn checkpoint(
        &self,
        req: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let start = Instant::now();
        let r = match self.node.authorize(&req, Need::Admin) {
            Ok(_) => membership::checkpoint(&self.node).await,
            Err(e) => Err(e),
        };
        let r = r.map(|(snapshot, purged)| pb::CheckpointResponse {
            header: Some(pb::ResponseHeader {
                state_id: self.node.sm.applied_index(),
                ..Default::default()
            }),
            snapshot_index: snapshot,
            purged_index: purged,
        });
        self.node
            .metrics
            .observe_rpc("checkpoint", start.elapsed(), r.is_ok());
        r.map(Response::new).map_err(Status::from)
    }

    #[tracing::instrument(skip_all)]
    async fn node_status(
        &self,
        _req: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusResponse>, Status> {
        let start = Instant::now();
        // A member whose state cannot be read still answers (the rest of its status says
        // why it is behind); the upgrade state then shows as level 1, nothing prepared.
        let upgrade = self
            .node
            .read_local(|kv| crate::namespace::upgrade::load(kv))
            .await;
        let ok = upgrade.is_ok();
        let r = self.node_status(upgrade.unwrap_or_default());
        self.node
            .metrics
            .observe_rpc("node_status", start.elapsed(), ok);
        Ok(Response::new(r))
    }

    #[tracing::instrument(skip_all)]
    async fn list_block_servers(
        &self,
        _req: Request<pb::ListBlockServersRequest>,
    ) -> Result<Response<pb::ListBlockServersResponse>, Status> {
        let start = Instant::now();
        // The journaled admin states, fresher than the scan's copy.
        let applied = self.node.sm.applied_index();
        let admin = self
            .node
            .read_local(|kv| crate::namespace::admin_state::load(kv))
            .await;
        // The active's view: which servers are live is its call.
        let r = self
            .node
            .ensure_active()
            .and_then(|()| {
                self.node.blocks.registry.set_admin(applied, admin?);
                Ok(())
            })
            .map(|()| pb::ListBlockServersResponse {
                nameservice: self.node.nameservice_name().to_owned(),
                servers: self
                    .node
                    .blocks
                    .registry
                    .nodes()
                    .iter()
                    .map(|n| pb::BlockServerInfo {
                        id: n.id.get(),
                        addr: n.addr.clone(),
                        rack: n.rack.clone(),
                        live: n.live,
                        capacity: n.storage.capacity,
                        used: n.storage.used,
                        pool_used: n.storage.pool_used,
                        available: n.storage.available,
                        blocks: n.blocks as u64,
                        volumes: n.storage.volumes,
                        failed_volumes: n.storage.failed_volumes,
                        xmits_in_progress: n.storage.xmits_in_progress,
                        admin: Some(super::convert::admin_status(n)),
                        registered_ms: n.registered_ms,
                        fully_reported: n.fully_reported,
                    })
                    .collect(),
            });
        self.node
            .metrics
            .observe_rpc("list_block_servers", start.elapsed(), r.is_ok());
        r.map(Response::new).map_err(Status::from)
    }

    #[tracing::instrument(skip_all)]
    async fn reconstruction_status(
        &self,
        _req: Request<pb::ReconstructionStatusRequest>,
    ) -> Result<Response<pb::ReconstructionStatusResponse>, Status> {
        let start = Instant::now();
        // The journaled setting, not the scheduler's copy (refreshed by the next scan).
        let throttle = self
            .node
            .read_local(|kv| crate::namespace::throttle::load(kv))
            .await;
        let r = self.node.ensure_active().and_then(|()| {
            let throttle = throttle?;
            let (status, _) = self.node.blocks.scheduler.status();
            let nodes = self.node.blocks.registry.nodes();
            Ok(pb::ReconstructionStatusResponse {
                leader: self.node.id.get(),
                queued: status.queued.to_vec(),
                unrecoverable: status.unrecoverable,
                in_flight: status.in_flight,
                tasks_started: status.started,
                tasks_finished: status.finished,
                tasks_failed: status.failed,
                throttle: Some(super::convert::throttle(&throttle)),
                nodes: nodes
                    .iter()
                    .map(|n| pb::NodeReconstruction {
                        node_id: n.id.get(),
                        rack: n.rack.clone(),
                        xmits_in_progress: n.storage.xmits_in_progress,
                        tasks_in_flight: status.in_flight_by_node.get(&n.id).copied().unwrap_or(0),
                        live: n.live,
                        admin: Some(super::convert::admin_status(n)),
                    })
                    .collect(),
            })
        });
        self.node
            .metrics
            .observe_rpc("reconstruction_status", start.elapsed(), r.is_ok());
        r.map(Response::new).map_err(Status::from)
    }
}
