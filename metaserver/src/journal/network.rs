//! The Raft transport between metaservers over gRPC: each of openraft's messages is a
//! versioned record (`journal::format::rpc`) in the bytes of a `RaftMessage`; the receiving
//! side is `service::raft`. A connection is opened lazily per peer and shared by every client
//! of that peer; an unreachable peer is reported as such so that openraft backs off instead
//! of spinning.

use std::collections::HashMap;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use prometheus_client::metrics::histogram::Histogram;
use raftfs_core::format::{self, Schema};
use raftfs_proto::RaftMessage;
use raftfs_proto::raft_client::RaftClient;
use tonic::transport::{Channel, Endpoint};

use super::format::rpc;
use super::{BasicNodeMeta, MemberId, TypeConfig};

/// How this metaserver opens connections to other metaservers: from `source-ip` when one is
/// configured, so that a fault-injecting proxy (the Jepsen harness's) can tell which member a
/// connection comes from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dialer {
    pub source_ip: Option<std::net::IpAddr>,
}

impl Dialer {
    /// An endpoint for `addr` (host:port), TCP_NODELAY, bound to the source address.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
        Ok(Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .local_address(self.source_ip))
    }
}

/// Creates a [`PeerClient`] per target, all of one target sharing one HTTP/2 connection.
///
/// openraft asks for a client per replication stream, but also for every read-index round
/// (`ensure_linearizable`, behind each msync): a fresh connection there cost a TCP and HTTP/2
/// handshake per msync, and a delayed-ACK stall (~40 ms) on a good share of them. A cached
/// channel multiplexes those heartbeats with replication on the connection already open.
#[derive(Debug, Clone, Default)]
pub struct NetworkFactory {
    dialer: Dialer,
    /// Round trips of AppendEntries that carry entries (`journal_append_entries_seconds`).
    append_entries_seconds: Option<Histogram>,
    channels: std::sync::Arc<std::sync::Mutex<HashMap<(MemberId, String), Channel>>>,
}

impl NetworkFactory {
    pub fn new(dialer: Dialer) -> Self {
        Self {
            dialer,
            append_entries_seconds: None,
            channels: Default::default(),
        }
    }

    /// Records the round trip of every AppendEntries that carries entries in `histogram`.
    #[must_use]
    pub fn timed(mut self, histogram: Histogram) -> Self {
        self.append_entries_seconds = Some(histogram);
        self
    }

    fn channel(&self, target: MemberId, addr: &str) -> Option<Channel> {
        let mut channels = match self.channels.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(c) = channels.get(&(target, addr.to_owned())) {
            return Some(c.clone());
        }
        let channel = self
            .dialer
            .endpoint(addr)
            .ok()?
            .connect_timeout(Duration::from_secs(1))
            // A connection that silently stops carrying (a partition that drops packets) is
            // found dead in seconds and replaced, not waited on through TCP's retransmissions.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true)
            .connect_lazy();
        // A member that moved to another address leaves its old channel behind.
        channels.retain(|(id, _), _| *id != target);
        channels.insert((target, addr.to_owned()), channel.clone());
        Some(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: MemberId, node: &BasicNodeMeta) -> PeerClient {
        PeerClient {
            target,
            client: self.channel(target, &node.addr).map(RaftClient::new),
            addr: node.addr.clone(),
            append_entries_seconds: self.append_entries_seconds.clone(),
        }
    }
}

/// The connection to one peer.
#[derive(Debug)]
pub struct PeerClient {
    target: MemberId,
    addr: String,
    client: Option<RaftClient<Channel>>,
    append_entries_seconds: Option<Histogram>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl PeerClient {
    /// Sends `req` as a record of family `Req` and decodes the reply as one of `Reply`.
    async fn call<Req, Reply, Resp, E>(
        &mut self,
        method: &'static str,
        req: &Req::Value,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<MemberId, BasicNodeMeta, RaftError<MemberId, E>>>
    where
        Req: Schema,
        Reply: Schema<Value = Result<Resp, RaftError<MemberId, E>>>,
        E: std::error::Error,
    {
        let Some(client) = self.client.as_mut() else {
            let e = TransportError(format!("invalid peer address {:?}", self.addr));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        let data =
            format::encode::<Req>(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftMessage { data });
        request.set_timeout(option.hard_ttl());
        let reply = match method {
            "append_entries" => client.append_entries(request).await,
            "vote" => client.vote(request).await,
            _ => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| {
            let e = TransportError(format!("{method} to node {}: {status}", self.target));
            match status.code() {
                tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            }
        })?;
        let result = format::decode::<Reply>(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        AppendEntriesResponse<MemberId>,
        RPCError<MemberId, BasicNodeMeta, RaftError<MemberId>>,
    > {
        let start = std::time::Instant::now();
        let result = self
            .call::<rpc::AppendEntries, rpc::AppendEntriesReply, _, _>(
                "append_entries",
                &rpc,
                &option,
            )
            .await;
        if let Some(h) = &self.append_entries_seconds
            && !rpc.entries.is_empty()
        {
            h.observe(start.elapsed().as_secs_f64());
        }
        result
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<MemberId>,
        RPCError<MemberId, BasicNodeMeta, RaftError<MemberId, InstallSnapshotError>>,
    > {
        self.call::<rpc::InstallSnapshot, rpc::InstallSnapshotReply, _, _>(
            "install_snapshot",
            &rpc,
            &option,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> Result<VoteResponse<MemberId>, RPCError<MemberId, BasicNodeMeta, RaftError<MemberId>>>
    {
        self.call::<rpc::VoteRequest, rpc::VoteReply, _, _>("vote", &rpc, &option)
            .await
    }
}
