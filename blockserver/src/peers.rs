//! The other blockservers, as reconstruction reaches them: one lazily connected channel per
//! peer, shared by every task, for a source's ranged read and a rack's part of a lost cell
//! (`BlockData.Partial`). The wire stays here: callers pass domain types and get
//! [`TaskError`]s, every request bounded by [`READ_TIMEOUT`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use raftfs_core::checksum::ChunkedRead;
use raftfs_core::namespace::blocks::GroupId;
use raftfs_core::reconstruction::PartialCell;
use raftfs_proto as pb;
use raftfs_proto::block_data_client::BlockDataClient;
use raftfs_runtime::Dialer;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::convert;
use crate::error::TaskError;

/// How long one source read (or one partial cell) may take before the task fails and the
/// active reschedules it (DESIGN §7).
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Most peers a server keeps a channel to. Addresses come from tasks and from other servers'
/// `Partial` requests: without a bound, a peer naming a new address in each request would
/// grow the map (and the sockets behind it) forever. A fleet's racks hold far fewer servers
/// that one server reads from within a while.
pub const MAX_CHANNELS: usize = 1024;

/// The channels to the peers this server has read from, the least recently used dropped
/// past [`MAX_CHANNELS`].
#[derive(Debug, Default)]
pub struct Peers {
    /// TLS with this server's certificate, when it has one (a `Partial` is answered only to
    /// blockservers).
    dialer: Dialer,
    channels: Mutex<Channels>,
}

/// Channels by address, each with when it was last used (a counter).
#[derive(Debug, Default)]
struct Channels {
    by_addr: HashMap<String, (Channel, u64)>,
    clock: u64,
}

impl Channels {
    /// The channel to `addr`, made by `open` if there is none; the least recently used one
    /// goes when the map is full (a task still holding its clone keeps it working).
    fn get_or_open(
        &mut self,
        addr: &str,
        open: impl FnOnce() -> Result<Channel, TaskError>,
    ) -> Result<Channel, TaskError> {
        self.clock += 1;
        let now = self.clock;
        if let Some((c, used)) = self.by_addr.get_mut(addr) {
            *used = now;
            return Ok(c.clone());
        }
        let c = open()?;
        if self.by_addr.len() >= MAX_CHANNELS
            && let Some(oldest) = self
                .by_addr
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(a, _)| a.clone())
        {
            self.by_addr.remove(&oldest);
        }
        self.by_addr.insert(addr.to_owned(), (c.clone(), now));
        Ok(c)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_addr.len()
    }
}

impl Peers {
    /// No channel yet; each opened through `dialer`.
    pub fn new(dialer: Dialer) -> Self {
        Self {
            dialer,
            channels: Mutex::default(),
        }
    }

    /// A client of the blockserver at `addr` on its shared channel.
    fn client(&self, addr: &str) -> Result<BlockDataClient<Channel>, TaskError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = channels.get_or_open(addr, || {
            Ok(self
                .dialer
                .endpoint(addr)
                .map_err(|error| TaskError::Address {
                    addr: addr.to_owned(),
                    error: error.to_string(),
                })?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .connect_lazy())
        })?;
        Ok(BlockDataClient::new(channel)
            .max_decoding_message_size(crate::service::MAX_DATA_MESSAGE))
    }

    /// `len` bytes of internal block `index` of `group` at `offset`, from the server at
    /// `addr`: all of them, or an error.
    pub async fn read(
        &self,
        addr: &str,
        group: GroupId,
        index: u32,
        offset: u64,
        len: u64,
        token: &[u8],
    ) -> Result<Vec<u8>, TaskError> {
        let source = |status| TaskError::Source {
            addr: addr.to_owned(),
            status,
        };
        let fetch = async {
            let mut stream = self
                .client(addr)?
                .read_block(pb::ReadBlockRequest {
                    block: Some(pb::BlockRef {
                        group: group.into(),
                        index,
                    }),
                    offset,
                    length: len,
                    token: token.to_vec(),
                    checksums: true,
                })
                .await
                .map_err(source)?
                .into_inner();
            // At most a cell or a replica's piece: the task was validated. Every chunk is
            // checked against the checksum stored with it: a source's bytes damaged on the
            // way would otherwise be rebuilt into the new block.
            let mut out = ChunkedRead::new(offset, len, usize::try_from(len).unwrap_or(0));
            while let Some(m) = stream.next().await {
                let m = m.map_err(source)?;
                out.push(m.offset, &m.data, &m.checksums)
                    .map_err(|e| TaskError::Checksum {
                        addr: addr.to_owned(),
                        error: e,
                    })?;
            }
            let out = out.into_bytes();
            if out.len() as u64 != len {
                return Err(TaskError::Length {
                    addr: addr.to_owned(),
                    got: out.len() as u64,
                    want: len,
                });
            }
            Ok(out)
        };
        within_timeout(addr, fetch).await
    }

    /// The part of a lost cell that the server at `addr` computes from its rack's sources.
    pub async fn partial(
        &self,
        addr: &str,
        cell: &PartialCell,
        token: &[u8],
    ) -> Result<Vec<u8>, TaskError> {
        let fetch = async {
            let request = pb::PartialRequest {
                token: token.to_vec(),
                ..convert::partial_request(cell)
            };
            self.client(addr)?
                .partial(request)
                .await
                .map(|r| r.into_inner().data)
                .map_err(|status| TaskError::Source {
                    addr: addr.to_owned(),
                    status,
                })
        };
        within_timeout(addr, fetch).await
    }
}

async fn within_timeout<T>(
    addr: &str,
    f: impl Future<Output = Result<T, TaskError>>,
) -> Result<T, TaskError> {
    tokio::time::timeout(READ_TIMEOUT, f)
        .await
        .map_err(|_| TaskError::Timeout {
            addr: addr.to_owned(),
            after: READ_TIMEOUT,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_channel_map_is_bounded_and_keeps_the_recently_used() {
        let peers = Peers::new(Dialer::default());
        // Every request names a new address (a peer's trick): the map stays at the bound.
        for i in 0..MAX_CHANNELS + 50 {
            let addr = format!("127.0.0.{}:{}", 1 + i / 60_000, 1 + i % 60_000);
            peers.client(&addr).expect("a lazy channel");
            if i % 10 == 0 {
                // One address in steady use survives the churn.
                peers.client("127.0.0.9:7000").expect("channel");
            }
        }
        let channels = peers.channels.lock().expect("lock");
        assert_eq!(channels.len(), MAX_CHANNELS);
        assert!(channels.by_addr.contains_key("127.0.0.9:7000"));
    }
}
