//! Talking to one internal block on one blockserver: a write stream (the writer's side of
//! `BlockData.WriteBlock`) and ranged reads (`BlockData.ReadBlock`).

use std::time::Duration;

use raftfs_proto as pb;
use raftfs_proto::block_data_client::BlockDataClient;
use raftfs_proto::{ErrorKind, detail_of};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use raftfs_core::checksum::{ChunkError, ChunkedRead};
use raftfs_core::id::{BlockServerId, GroupId};

use crate::client::Client;
use crate::model::{AccessToken, LocatedGroup};

/// Messages queued per stream: with 1 MiB cells, a few MiB in flight per internal block
/// keeps every server busy without buffering a whole block in memory.
const STREAM_DEPTH: usize = 4;

/// Largest gRPC message the data path sends or accepts (a cell plus framing).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Why an internal block could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockFailure {
    /// The server is out of space.
    NoSpace(String),
    /// The bytes on the server do not match their checksums.
    Corrupt(String),
    /// Anything else: unreachable, timed out, refused.
    Other(String),
}

impl std::fmt::Display for BlockFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockFailure::NoSpace(m) => write!(f, "no space: {m}"),
            BlockFailure::Corrupt(m) => write!(f, "corrupt: {m}"),
            BlockFailure::Other(m) => f.write_str(m),
        }
    }
}

fn failure(addr: &str, status: &tonic::Status) -> BlockFailure {
    let kind = detail_of(status).and_then(|d| ErrorKind::try_from(d.kind).ok());
    let message = format!("{addr}: {}", status.message());
    match kind {
        Some(ErrorKind::NoSpace) => BlockFailure::NoSpace(message),
        Some(ErrorKind::CorruptBlock) => BlockFailure::Corrupt(message),
        _ if status.code() == tonic::Code::ResourceExhausted => BlockFailure::NoSpace(message),
        _ if status.code() == tonic::Code::DataLoss => BlockFailure::Corrupt(message),
        _ => BlockFailure::Other(message),
    }
}

pub(crate) fn data_client(
    client: &Client,
    addr: &str,
) -> Result<BlockDataClient<crate::failover::Rpc>, BlockFailure> {
    let channel = client
        .block_channel(addr)
        .map_err(|e| BlockFailure::Other(e.to_string()))?;
    Ok(BlockDataClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

/// How often an open write stream that has nothing to send sends an empty message, so that
/// the blockserver (which ends a stream silent for its `write-idle-secs`, 60 by default)
/// knows a slow writer from a dead one: HDFS's heartbeat packets.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Sends an empty message on the stream every [`KEEP_ALIVE`] while it is open and idle; ends
/// when the stream's sender is gone (finished, failed or dropped).
async fn keep_alive(tx: mpsc::WeakSender<pb::WriteBlockRequest>) {
    loop {
        tokio::time::sleep(KEEP_ALIVE).await;
        let Some(tx) = tx.upgrade() else { return };
        // A full queue is traffic enough; a closed one, the end.
        if let Err(mpsc::error::TrySendError::Closed(_)) =
            tx.try_send(pb::WriteBlockRequest::default())
        {
            return;
        }
    }
}

/// An open write of one internal block.
#[derive(Debug)]
pub struct BlockStream {
    pub node: BlockServerId,
    pub addr: String,
    tx: mpsc::Sender<pb::WriteBlockRequest>,
    done: JoinHandle<Result<u64, tonic::Status>>,
    /// Bytes queued so far: what the server must acknowledge at finalize.
    sent: u64,
}

impl BlockStream {
    /// Opens the stream of internal block `index` of `group` on `addr`.
    pub fn open(
        client: &Client,
        node: BlockServerId,
        addr: &str,
        group: GroupId,
        index: u32,
        token: &AccessToken,
    ) -> Result<Self, BlockFailure> {
        let mut rpc = data_client(client, addr)?;
        let (tx, rx) = mpsc::channel(STREAM_DEPTH);
        let first = pb::WriteBlockRequest {
            block: Some(pb::BlockRef {
                group: group.get(),
                index,
            }),
            data: Vec::new(),
            finalize: false,
            token: token.0.clone(),
        };
        tx.try_send(first)
            .map_err(|e| BlockFailure::Other(format!("{addr}: {e}")))?;
        tokio::spawn(keep_alive(tx.downgrade()));
        let done = tokio::spawn(async move {
            rpc.write_block(ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner().length)
        });
        Ok(Self {
            node,
            addr: addr.to_owned(),
            tx,
            done,
            sent: 0,
        })
    }

    /// The stream's RPC ended early: why.
    async fn ended(self) -> BlockFailure {
        let addr = self.addr.clone();
        match self.done.await {
            Ok(Err(status)) => failure(&addr, &status),
            Ok(Ok(_)) => BlockFailure::Other(format!("{addr}: write ended early")),
            Err(e) => BlockFailure::Other(format!("{addr}: write task: {e}")),
        }
    }

    /// Queues `data`; waits (up to `timeout`) while the server is behind. On failure the
    /// stream is consumed and the reason returned.
    pub async fn send(mut self, data: Vec<u8>, timeout: Duration) -> Result<Self, BlockFailure> {
        let len = data.len() as u64;
        let req = pb::WriteBlockRequest {
            block: None,
            data,
            finalize: false,
            token: Vec::new(),
        };
        match tokio::time::timeout(timeout, self.tx.send(req)).await {
            Ok(Ok(())) => {
                self.sent = self.sent.saturating_add(len);
                Ok(self)
            }
            Ok(Err(_)) => Err(self.ended().await),
            Err(_) => {
                self.done.abort();
                Err(BlockFailure::Other(format!(
                    "{}: no progress within {timeout:?}",
                    self.addr
                )))
            }
        }
    }

    /// Finalizes the block: returns once the server has fsynced it, with its length, which
    /// must be every byte sent (a server that finalized fewer, its stream cut short by lease
    /// recovery, did not store the block this writer wrote).
    pub async fn finish(self, timeout: Duration) -> Result<u64, BlockFailure> {
        let last = pb::WriteBlockRequest {
            block: None,
            data: Vec::new(),
            finalize: true,
            token: Vec::new(),
        };
        let addr = self.addr.clone();
        let Self { tx, done, sent, .. } = self;
        let wait = async move {
            if tx.send(last).await.is_err() {
                // The RPC already ended; its result says why.
            }
            drop(tx);
            match done.await {
                Ok(Ok(len)) if len == sent => Ok(len),
                Ok(Ok(len)) => Err(BlockFailure::Other(format!(
                    "{addr}: finalized {len} of the {sent} bytes sent"
                ))),
                Ok(Err(status)) => Err(failure(&addr, &status)),
                Err(e) => Err(BlockFailure::Other(format!("{addr}: write task: {e}"))),
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| Err(BlockFailure::Other("finalize timed out".into())))
    }
}

/// Reads `len` bytes at `offset` of internal block `index` of `group` from `addr`, within
/// `timeout`, with the group's token.
pub async fn read(
    client: &Client,
    addr: &str,
    group: &LocatedGroup,
    index: u32,
    offset: u64,
    len: u64,
    timeout: Duration,
) -> Result<Vec<u8>, BlockFailure> {
    let mut rpc = data_client(client, addr)?;
    let req = pb::ReadBlockRequest {
        block: Some(pb::BlockRef {
            group: group.id.get(),
            index,
        }),
        offset,
        length: len,
        token: group.token.0.clone(),
        checksums: true,
    };
    let fetch = async {
        let mut stream = rpc
            .read_block(req)
            .await
            .map_err(|s| failure(addr, &s))?
            .into_inner();
        let cap = usize::try_from(len).unwrap_or(0).min(MAX_MESSAGE * 4);
        // Every chunk checked against the CRC32C stored with it when it was written.
        let mut out = ChunkedRead::new(offset, len, cap);
        while let Some(msg) = stream.next().await {
            let msg = msg.map_err(|s| failure(addr, &s))?;
            out.push(msg.offset, &msg.data, &msg.checksums)
                .map_err(|e| match e {
                    // Bytes that do not match their checksum: a corrupt copy to this reader.
                    ChunkError::Mismatch { .. } => {
                        BlockFailure::Corrupt(format!("{addr}: in transit: {e}"))
                    }
                    // A server that broke the protocol: nothing says its copy is bad.
                    _ => BlockFailure::Other(format!("{addr}: {e}")),
                })?;
        }
        let out = out.into_bytes();
        if out.len() as u64 != len {
            return Err(BlockFailure::Other(format!(
                "{addr}: block {}/{index} returned {} of {len} bytes",
                group.id,
                out.len()
            )));
        }
        Ok(out)
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .unwrap_or_else(|_| {
            Err(BlockFailure::Other(format!(
                "{addr}: no answer within {timeout:?}"
            )))
        })
}
