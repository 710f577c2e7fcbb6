//! The receiving side of the Raft transport (`journal::network` is the sending side).

use raftfs_proto::RaftMessage;
use raftfs_proto::raft_server::Raft as RaftRpc;
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
        let rpc = request(req)?;
        reply(&self.node.raft.append_entries(rpc).await)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = request(req)?;
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
}
