//! The Raft transport between metaservers over gRPC: each of openraft's messages is a
//! versioned record (`journal::format::rpc`) in the bytes of a `RaftMessage`; the receiving
//! side is `service::raft`. A connection is opened lazily per peer and shared by every client
//! of that peer; an unreachable peer is reported as such so that openraft backs off instead
//! of spinning.

use std::collections::HashMap;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
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

type Entry = openraft::Entry<TypeConfig>;

/// How this metaserver opens connections to other servers: over TLS with its member
/// certificate when it has one (DESIGN §9), and from `source-ip` when one is configured, so
/// that a fault-injecting proxy (the Jepsen harness's) can tell which member a connection
/// comes from.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    pub source_ip: Option<std::net::IpAddr>,
    pub wire: raftfs_runtime::Dialer,
}

impl Dialer {
    /// An endpoint for `addr` (host:port), TCP_NODELAY, bound to the source address.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, raftfs_runtime::TlsError> {
        Ok(self.wire.endpoint(addr)?.local_address(self.source_ip))
    }
}

/// Which Raft RPC a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RaftMethod {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RaftMethod {
    pub fn name(self) -> &'static str {
        match self {
            RaftMethod::AppendEntries => "append_entries",
            RaftMethod::Vote => "vote",
            RaftMethod::InstallSnapshot => "install_snapshot",
        }
    }
}

/// Why a Raft message brought back no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The member cannot be reached (no connection, a partition): openraft backs off.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The message went out and no usable reply came back (a timeout, a refusal).
    #[error("{0}")]
    Network(String),
}

/// Carries one Raft message to a member and brings back its reply, both as the bytes of a
/// versioned record (`journal::format::rpc`): gRPC between processes ([`GrpcTransport`]),
/// a router in one process (the in-process cluster of `raftfs-sim`), Maelstrom messages.
/// Encoding, decoding and openraft's error types stay in [`PeerClient`], written once.
pub trait RaftTransport: Clone + Send + Sync + 'static {
    /// Sends `data` to member `to` (at `addr`, as the membership names it) and waits at most
    /// `ttl` for the reply.
    fn send(
        &self,
        to: MemberId,
        addr: &str,
        method: RaftMethod,
        data: Vec<u8>,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, SendError>> + Send;
}

/// Raft messages over gRPC, all of one target sharing one HTTP/2 connection.
///
/// openraft asks for a client per replication stream, but also for every read-index round
/// (`ensure_linearizable`, behind each msync): a fresh connection there cost a TCP and HTTP/2
/// handshake per msync, and a delayed-ACK stall (~40 ms) on a good share of them. A cached
/// channel multiplexes those heartbeats with replication on the connection already open.
#[derive(Debug, Clone)]
pub struct GrpcTransport {
    dialer: Dialer,
    /// Each member's address and the channel to it, looked up on every message without
    /// allocating.
    channels: std::sync::Arc<std::sync::Mutex<HashMap<MemberId, (String, Channel)>>>,
}

impl GrpcTransport {
    pub fn new(dialer: Dialer) -> Self {
        Self {
            dialer,
            channels: Default::default(),
        }
    }

    fn channel(&self, target: MemberId, addr: &str) -> Option<Channel> {
        let mut channels = match self.channels.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some((known, c)) = channels.get(&target)
            && known == addr
        {
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
        channels.insert(target, (addr.to_owned(), channel.clone()));
        Some(channel)
    }
}

impl RaftTransport for GrpcTransport {
    async fn send(
        &self,
        to: MemberId,
        addr: &str,
        method: RaftMethod,
        data: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, SendError> {
        let Some(channel) = self.channel(to, addr) else {
            return Err(SendError::Unreachable(format!(
                "invalid peer address {addr:?}"
            )));
        };
        let mut client = RaftClient::new(channel);
        let mut request = tonic::Request::new(RaftMessage { data });
        request.set_timeout(ttl);
        let reply = match method {
            RaftMethod::AppendEntries => client.append_entries(request).await,
            RaftMethod::Vote => client.vote(request).await,
            RaftMethod::InstallSnapshot => client.install_snapshot(request).await,
        };
        match reply {
            Ok(r) => Ok(r.into_inner().data),
            Err(status) => {
                let why = format!("{} to node {to}: {status}", method.name());
                Err(match status.code() {
                    tonic::Code::Unavailable => SendError::Unreachable(why),
                    _ => SendError::Network(why),
                })
            }
        }
    }
}

/// Creates a [`PeerClient`] per target, over one transport.
#[derive(Debug, Clone)]
pub struct NetworkFactory<T = GrpcTransport> {
    transport: T,
    /// Most bytes of entries in one AppendEntries (one entry always goes, whatever its size).
    max_append_bytes: usize,
    /// Round trips of AppendEntries that carry entries (`journal_append_entries_seconds`).
    append_entries_seconds: Option<Histogram>,
}

impl NetworkFactory<GrpcTransport> {
    /// Connections through `dialer`; AppendEntries of at most `max_append_bytes` of entries.
    pub fn new(dialer: Dialer, max_append_bytes: usize) -> Self {
        Self::over(GrpcTransport::new(dialer), max_append_bytes)
    }
}

impl<T: RaftTransport> NetworkFactory<T> {
    /// Messages over `transport`; AppendEntries of at most `max_append_bytes` of entries.
    pub fn over(transport: T, max_append_bytes: usize) -> Self {
        Self {
            transport,
            max_append_bytes,
            append_entries_seconds: None,
        }
    }

    /// Records the round trip of every AppendEntries that carries entries in `histogram`.
    #[must_use]
    pub fn timed(mut self, histogram: Histogram) -> Self {
        self.append_entries_seconds = Some(histogram);
        self
    }
}

impl<T: RaftTransport> RaftNetworkFactory<TypeConfig> for NetworkFactory<T> {
    type Network = PeerClient<T>;

    async fn new_client(&mut self, target: MemberId, node: &BasicNodeMeta) -> PeerClient<T> {
        PeerClient {
            target,
            transport: self.transport.clone(),
            addr: node.addr.clone(),
            append_entries_seconds: self.append_entries_seconds.clone(),
            max_append_bytes: self.max_append_bytes,
            append_budget: self.max_append_bytes,
            appending: false,
        }
    }
}

/// The connection to one peer.
#[derive(Debug)]
pub struct PeerClient<T = GrpcTransport> {
    target: MemberId,
    addr: String,
    transport: T,
    append_entries_seconds: Option<Histogram>,
    max_append_bytes: usize,
    /// The bytes of entries the next AppendEntries may carry: halved when one did not come
    /// back in time, grown again by a quarter of the maximum after one that came back fast.
    append_budget: usize,
    /// An AppendEntries with entries is under way: still set when the next one starts, it
    /// was dropped by openraft's timeout (one heartbeat interval).
    appending: bool,
}

/// An upper bound of one entry's size in an AppendEntries: its operations' size bounds
/// (each checked at the edge), and room for the rest.
fn entry_size_bound(entry: &Entry) -> usize {
    const OVERHEAD: usize = 256;
    match &entry.payload {
        openraft::EntryPayload::Normal(batch) => batch
            .proposals
            .iter()
            .map(|p| p.op.size_bound().saturating_add(64))
            .fold(OVERHEAD, usize::saturating_add),
        _ => OVERHEAD,
    }
}

/// How many of `entries`, from the first, fit in `budget` bytes: at least one.
fn entries_within(entries: &[Entry], budget: usize) -> usize {
    let mut bytes = 0usize;
    let mut n = 0;
    for e in entries {
        bytes = bytes.saturating_add(entry_size_bound(e));
        if n > 0 && bytes > budget {
            break;
        }
        n += 1;
    }
    n
}

impl<T: RaftTransport> PeerClient<T> {
    /// Sends `req` as a record of family `Req` and decodes the reply as one of `Reply`.
    async fn call<Req, Reply, Resp, E>(
        &mut self,
        method: RaftMethod,
        req: &Req::Value,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<MemberId, BasicNodeMeta, RaftError<MemberId, E>>>
    where
        Req: Schema,
        Reply: Schema<Value = Result<Resp, RaftError<MemberId, E>>>,
        E: std::error::Error,
    {
        let data =
            format::encode::<Req>(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = self
            .transport
            .send(self.target, &self.addr, method, data, option.hard_ttl())
            .await
            .map_err(|e| match e {
                SendError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
                SendError::Network(_) => RPCError::Network(NetworkError::new(&e)),
            })?;
        let result = format::decode::<Reply>(&reply)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl<T: RaftTransport> RaftNetwork<TypeConfig> for PeerClient<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        AppendEntriesResponse<MemberId>,
        RPCError<MemberId, BasicNodeMeta, RaftError<MemberId>>,
    > {
        // openraft gives an AppendEntries one heartbeat interval (100 ms) to come back, and
        // sends the same entries again after a timeout: a message that cannot be carried,
        // stored and answered in that time (a follower catching up on 256 entries of 512 KiB)
        // would time out forever. Refused here, it is sent again at once with fewer entries
        // (openraft's entries hint).
        // A follower that stores and answers slower than the byte bound assumes (a loaded
        // machine, a debug build) would time out on every resend: the bound adapts to it.
        if self.appending {
            self.appending = false;
            self.append_budget = (self.append_budget / 2).max(1);
        }
        let fit = entries_within(&rpc.entries, self.append_budget);
        if fit < rpc.entries.len() {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit as u64),
            ));
        }
        let start = std::time::Instant::now();
        self.appending = !rpc.entries.is_empty();
        let result = self
            .call::<rpc::AppendEntries, rpc::AppendEntriesReply, _, _>(
                RaftMethod::AppendEntries,
                &rpc,
                &option,
            )
            .await;
        self.appending = false;
        if result.is_ok() && start.elapsed() < option.hard_ttl() / 4 {
            self.append_budget = self
                .append_budget
                .saturating_add(self.max_append_bytes / 4)
                .min(self.max_append_bytes);
        }
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
            RaftMethod::InstallSnapshot,
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
        self.call::<rpc::VoteRequest, rpc::VoteReply, _, _>(RaftMethod::Vote, &rpc, &option)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Batch, CallId, ClientId, Proposal};
    use crate::namespace::{ApplyCtx, NsPath, Op, XattrExpect};

    fn entry(index: u64, values: &[usize]) -> Entry {
        let proposals = values
            .iter()
            .map(|len| Proposal {
                client: ClientId::default(),
                call_id: CallId::UNCACHED,
                op: Op::SetXattr {
                    path: NsPath::parse("/f").expect("path"),
                    name: "user.v".into(),
                    value: vec![7; *len],
                    expect: XattrExpect::Any,
                },
                access: None,
            })
            .collect();
        openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, MemberId(1)), index),
            payload: openraft::EntryPayload::Normal(Batch {
                ctx: ApplyCtx {
                    now_ms: 0,
                    lease_ms: 0,
                },
                proposals,
            }),
        }
    }

    /// An AppendEntries takes the entries that fit the byte budget, and always the first.
    #[test]
    fn appends_are_cut_to_the_byte_budget() {
        let kib = 1024;
        let entries: Vec<Entry> = (1..=4).map(|i| entry(i, &[300 * kib, 200 * kib])).collect();
        assert_eq!(entries_within(&entries, 2 << 20), 4);
        assert_eq!(entries_within(&entries, 1100 * kib), 2);
        assert_eq!(
            entries_within(&entries, 10 * kib),
            1,
            "one entry always goes"
        );
        assert_eq!(entries_within(&[], 10), 0);
    }
}
