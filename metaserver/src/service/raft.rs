//! The receiving side of the Raft transport (`journal::network` is the sending side). Every
//! payload is a versioned record (`journal::format::rpc`): one of a version this binary does
//! not know is refused, never misread. Only members send them: a member's certificate, whose
//! id must be the sender the message names (or, on a simple-mode port, whoever reaches it).

use raftfs_core::format::{self, Schema};
use raftfs_core::identity::{Denied, Need, Principal};
use raftfs_proto::raft_server::Raft as RaftRpc;
use raftfs_proto::{self as pb, RaftMessage};
use tonic::{Request, Response, Status};

use crate::error::MetaError;
use crate::journal::MemberId;
use crate::journal::format::rpc;
use crate::journal::network::RaftMethod;
use crate::node::MetaNode;

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

fn request<S: Schema>(data: &[u8]) -> Result<S::Value, Status> {
    format::decode::<S>(data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn reply<S: Schema>(v: &S::Value) -> Result<Vec<u8>, Status> {
    format::encode::<S>(v).map_err(|e| Status::internal(format!("unencodable raft reply: {e}")))
}

/// Takes one Raft message (the bytes of a versioned record) into `node`'s Raft and returns
/// the reply's bytes: what every transport delivers to, gRPC here, the in-process router of
/// `raftfs-sim`, Maelstrom messages. `proved`: the member a certificate proved sent it, if
/// any; a message naming another sender is refused.
#[tracing::instrument(level = "trace", skip_all, fields(method = method.name()))]
pub async fn receive(
    node: &MetaNode,
    method: RaftMethod,
    data: &[u8],
    proved: Option<MemberId>,
) -> Result<Vec<u8>, Status> {
    match method {
        RaftMethod::AppendEntries => {
            let rpc = request::<rpc::AppendEntries>(data)?;
            same_sender(proved, rpc.vote.leader_id.node_id)?;
            let newest = rpc
                .entries
                .last()
                .map(|e| e.log_id.index)
                .max(rpc.leader_commit.map(|l| l.index));
            if let Some(index) = newest {
                node.leader_position.heard(index);
            }
            reply::<rpc::AppendEntriesReply>(&node.raft.append_entries(rpc).await)
        }
        RaftMethod::Vote => {
            let rpc = request::<rpc::VoteRequest>(data)?;
            same_sender(proved, rpc.vote.leader_id.node_id)?;
            // A member removed from the cluster never learns it (the active stops
            // replicating to it), keeps its old view, and campaigns with ever higher terms;
            // openraft 0.9 would let that depose the active again and again. Only voters of
            // our membership get a vote (a node that has not joined yet has none, and
            // refuses nothing).
            let candidate = rpc.vote.leader_id.node_id;
            let stranger = {
                let m = node.raft.metrics();
                let m = m.borrow();
                let membership = m.membership_config.membership();
                let mut voters = membership.voter_ids().peekable();
                voters.peek().is_some() && !membership.voter_ids().any(|v| v == candidate)
            };
            if stranger {
                tracing::debug!(
                    %candidate,
                    "vote request from a node that is not a voter here"
                );
                return Err(Status::failed_precondition(format!(
                    "node {candidate} is not a voter of this cluster"
                )));
            }
            reply::<rpc::VoteReply>(&node.raft.vote(rpc).await)
        }
        RaftMethod::InstallSnapshot => {
            let rpc = request::<rpc::InstallSnapshot>(data)?;
            same_sender(proved, rpc.vote.leader_id.node_id)?;
            reply::<rpc::InstallSnapshotReply>(&node.raft.install_snapshot(rpc).await)
        }
    }
}

impl RaftService {
    /// Checks who sent a gRPC Raft message and hands it to [`receive`].
    async fn deliver(
        &self,
        method: RaftMethod,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let proved = self.sending_member(&req)?;
        let data = receive(&self.node, method, &req.into_inner().data, proved).await?;
        Ok(Response::new(RaftMessage { data }))
    }

    /// Refuses a Raft message unless it comes from a member (DESIGN §9); returns the member
    /// a certificate proved, to be compared with the sender the message names.
    fn sending_member<T>(&self, req: &Request<T>) -> Result<Option<MemberId>, Status> {
        let caller = self.node.authorize(req, Need::Member)?;
        Ok(match caller.principal {
            Principal::Member(m) => Some(m),
            _ => None,
        })
    }
}

/// Refuses a message whose named sender is not the member whose certificate sent it: a
/// member cannot speak for another one.
fn same_sender(proved: Option<MemberId>, named: MemberId) -> Result<(), Status> {
    match proved {
        Some(m) if m != named => Err(MetaError::Denied(Denied {
            caller: format!("member-{m}"),
            what: format!("send Raft messages as member {named}"),
        })
        .into()),
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    #[tracing::instrument(level = "trace", skip_all)]
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.deliver(RaftMethod::AppendEntries, req).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.deliver(RaftMethod::Vote, req).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.deliver(RaftMethod::InstallSnapshot, req).await
    }

    #[tracing::instrument(skip_all, fields(term = req.get_ref().term, index = req.get_ref().last_log_index))]
    async fn timeout_now(
        &self,
        req: Request<pb::TimeoutNowRequest>,
    ) -> Result<Response<pb::TimeoutNowResponse>, Status> {
        let proved = self.sending_member(&req)?;
        let req = req.into_inner();
        same_sender(proved, MemberId(req.leader))?;
        let ask = crate::membership::TimeoutNow {
            leader: MemberId(req.leader),
            term: req.term,
            last_log_index: req.last_log_index,
        };
        crate::membership::campaign(&self.node, ask)
            .await
            .map(|()| Response::new(pb::TimeoutNowResponse {}))
            .map_err(Status::from)
    }
}
