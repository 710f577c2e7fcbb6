//! The receiving side of the Raft transport (`journal::network` is the sending side).

use raftfs_proto::raft_server::Raft as RaftRpc;
use raftfs_proto::{self as pb, RaftMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::MetaNode;
use crate::journal::{decode, encode};

/// The `Raft` gRPC service.
#[derive(Debug, Clone)]
pub struct RaftService {
    node: MetaNode,
}

impl RaftService {
    pub fn new(node: MetaNode) -> Self {
        Self { node }
    }
}

fn request<T: DeserializeOwned>(req: Request<RaftMessage>) -> Result<T, Status> {
    decode(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn reply<T: Serialize>(v: &T) -> Result<Response<RaftMessage>, Status> {
    let data = encode(v).map_err(|e| Status::internal(format!("unencodable raft reply: {e}")))?;
    Ok(Response::new(RaftMessage { data }))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    #[tracing::instrument(level = "trace", skip_all)]
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: openraft::raft::AppendEntriesRequest<crate::journal::TypeConfig> = request(req)?;
        let newest = rpc
            .entries
            .last()
            .map(|e| e.log_id.index)
            .max(rpc.leader_commit.map(|l| l.index));
        if let Some(index) = newest {
            self.node.leader_position.heard(index);
        }
        reply(&self.node.raft.append_entries(rpc).await)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: openraft::raft::VoteRequest<crate::journal::NodeId> = request(req)?;
        // A member removed from the cluster never learns it (the active stops replicating to
        // it), keeps its old view, and campaigns with ever higher terms; openraft 0.9 would
        // let that depose the active again and again. Only voters of our membership get a
        // vote (a node that has not joined yet has none, and refuses nothing).
        let candidate = rpc.vote.leader_id.node_id;
        let stranger = {
            let m = self.node.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            let mut voters = membership.voter_ids().peekable();
            voters.peek().is_some() && !membership.voter_ids().any(|v| v == candidate)
        };
        if stranger {
            tracing::debug!(
                candidate,
                "vote request from a node that is not a voter here"
            );
            return Err(Status::failed_precondition(format!(
                "node {candidate} is not a voter of this cluster"
            )));
        }
        reply(&self.node.raft.vote(rpc).await)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = request(req)?;
        reply(&self.node.raft.install_snapshot(rpc).await)
    }

    #[tracing::instrument(skip_all, fields(term = req.get_ref().term, index = req.get_ref().last_log_index))]
    async fn timeout_now(
        &self,
        req: Request<pb::TimeoutNowRequest>,
    ) -> Result<Response<pb::TimeoutNowResponse>, Status> {
        let req = req.into_inner();
        crate::membership::campaign(&self.node, req.term, req.last_log_index)
            .await
            .map(|()| Response::new(pb::TimeoutNowResponse {}))
            .map_err(Status::from)
    }
}
