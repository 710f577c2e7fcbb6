//! The async file writer (DESIGN §6).
//!
//! Bytes are gathered into *units*: a whole stripe (k cells) for an erasure-coded file, a
//! 1 MiB packet for a replicated one. Each full unit is written by a background task while
//! the caller fills the next one: an EC unit is cut into its k cells, its m parity cells are
//! computed, and the k+m cells go to the group's k+m internal blocks in parallel; a
//! replicated packet goes to every replica in parallel (fan-out from the client rather than
//! HDFS's pipeline: one hop less, and a slow replica does not delay the others' disks). A
//! group is finished when full: every internal block is finalized (fsynced) before the next
//! group is allocated, so that an acknowledged group is durable.
//!
//! A server that fails while its block is written is given up on and avoided for the next
//! groups; the group stays writable while at least k internal blocks (one replica) are
//! alive, and the redundancy it lacks is rebuilt by reconstruction. Past that, the write
//! fails and the file stays under construction: nothing partial is ever visible as complete.
//!
//! `poll_flush` waits for the units already handed over; `poll_shutdown` writes the last,
//! possibly short, stripe, finalizes the group and completes the file.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;

use super::FileError;
use super::block_io::{BlockFailure, BlockStream};
use super::lease::LeaseRenewal;
use crate::client::{Client, CreateOptions};
use crate::model::{AccessToken, BlockLocation};
use raftfs_codec::ErasureCodec;
use raftfs_core::StoragePolicy;
use raftfs_core::id::{BlockServerId, GroupId};

/// Bytes per write to every replica of a replicated file.
const PACKET: usize = 1 << 20;

/// Writes one file.
#[derive(Debug)]
pub struct FileWriter {
    state: State,
    path: String,
}

enum State {
    Idle(Box<Core>),
    Busy(JoinHandle<(Box<Core>, Result<(), FileError>)>),
    Closing(JoinHandle<Result<u64, FileError>>),
    Closed,
    Failed,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Idle(_) => "Idle",
            State::Busy(_) => "Busy",
            State::Closing(_) => "Closing",
            State::Closed => "Closed",
            State::Failed => "Failed",
        })
    }
}

enum Slot {
    /// No byte for this internal block yet (a small EC group may never have any).
    NotOpened,
    Open(BlockStream),
    Failed,
}

struct OpenGroup {
    id: GroupId,
    targets: Vec<BlockLocation>,
    /// The token the blockservers take the group's writes with.
    token: AccessToken,
    slots: Vec<Slot>,
    /// Data bytes written into the group.
    bytes: u64,
    /// The last failure, for the error message.
    why: Option<BlockFailure>,
}

impl OpenGroup {
    fn failed(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Failed))
            .count()
    }
}

struct Core {
    client: Client,
    path: String,
    policy: StoragePolicy,
    codec: Option<Arc<dyn ErasureCodec>>,
    capacity: u64,
    unit: usize,
    buf: Vec<u8>,
    /// Bytes of the file handed to groups.
    written: u64,
    group: Option<OpenGroup>,
    /// Servers that failed a write of this file: not asked for again.
    excluded: Vec<BlockServerId>,
    _lease: LeaseRenewal,
}

impl FileWriter {
    /// Creates `path` (see [`Client::create`]) and opens it for writing.
    pub async fn create(
        client: &Client,
        path: &str,
        opts: &CreateOptions,
    ) -> Result<Self, FileError> {
        let status = client.create(path, opts).await?;
        Self::writing(client, path, &status)
    }

    /// Reopens the closed file `path` (see [`Client::append`]) and writes after its end, in
    /// new block groups: a closed group is never reopened.
    pub async fn append(client: &Client, path: &str) -> Result<Self, FileError> {
        let status = client.append(path).await?;
        Self::writing(client, path, &status)
    }

    /// The writer of a file this client holds the lease of, `status.length` bytes long.
    fn writing(
        client: &Client,
        path: &str,
        status: &crate::model::FileStatus,
    ) -> Result<Self, FileError> {
        let policy = status.storage_policy.parse::<StoragePolicy>()?;
        let codec: Option<Arc<dyn ErasureCodec>> =
            raftfs_codec::for_policy(&policy)?.map(Arc::from);
        let unit = match policy.layout() {
            Some(l) => usize::try_from(l.stripe_data()).unwrap_or(PACKET),
            None => PACKET,
        };
        let core = Core {
            client: client.clone(),
            path: path.to_owned(),
            capacity: policy.group_capacity(status.block_size),
            policy,
            codec,
            unit,
            buf: Vec::with_capacity(unit),
            written: status.length,
            group: None,
            excluded: Vec::new(),
            _lease: LeaseRenewal::start(client),
        };
        Ok(Self {
            state: State::Idle(Box::new(core)),
            path: path.to_owned(),
        })
    }

    /// The file being written.
    pub fn path(&self) -> &str {
        &self.path
    }
}

fn join_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("file writer task: {e}"))
}

impl AsyncWrite for FileWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match &mut self.state {
                State::Busy(task) => {
                    let done = ready!(Pin::new(task).poll(cx));
                    match done {
                        Ok((core, Ok(()))) => self.state = State::Idle(core),
                        Ok((_, Err(e))) => {
                            self.state = State::Failed;
                            return Poll::Ready(Err(e.into()));
                        }
                        Err(e) => {
                            self.state = State::Failed;
                            return Poll::Ready(Err(join_error(e)));
                        }
                    }
                }
                State::Idle(core) => {
                    let n = buf.len().min(core.unit - core.buf.len());
                    core.buf.extend_from_slice(&buf[..n]);
                    if core.buf.len() == core.unit {
                        let State::Idle(mut core) =
                            std::mem::replace(&mut self.state, State::Failed)
                        else {
                            unreachable!("matched Idle above")
                        };
                        let data = std::mem::replace(&mut core.buf, Vec::with_capacity(core.unit));
                        self.state = State::Busy(tokio::spawn(async move {
                            let r = core.write_unit(data).await;
                            (core, r)
                        }));
                    }
                    return Poll::Ready(Ok(n));
                }
                State::Closing(_) | State::Closed | State::Failed => {
                    return Poll::Ready(Err(FileError::Closed.into()));
                }
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let State::Busy(task) = &mut self.state {
            match ready!(Pin::new(task).poll(cx)) {
                Ok((core, Ok(()))) => self.state = State::Idle(core),
                Ok((_, Err(e))) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(e.into()));
                }
                Err(e) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(join_error(e)));
                }
            }
        }
        match self.state {
            State::Failed => Poll::Ready(Err(FileError::Closed.into())),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                State::Busy(_) => {
                    ready!(self.as_mut().poll_flush(cx))?;
                }
                State::Idle(_) => {
                    let State::Idle(core) = std::mem::replace(&mut self.state, State::Failed)
                    else {
                        unreachable!("matched Idle above")
                    };
                    self.state = State::Closing(tokio::spawn(core.close()));
                }
                State::Closing(task) => {
                    let r = ready!(Pin::new(task).poll(cx));
                    let (state, r) = match r {
                        Ok(Ok(_)) => (State::Closed, Ok(())),
                        Ok(Err(e)) => (State::Failed, Err(e.into())),
                        Err(e) => (State::Failed, Err(join_error(e))),
                    };
                    self.state = state;
                    return Poll::Ready(r);
                }
                State::Closed => return Poll::Ready(Ok(())),
                State::Failed => return Poll::Ready(Err(FileError::Closed.into())),
            }
        }
    }
}

impl Core {
    fn timeout(&self) -> std::time::Duration {
        self.client.config().block_write_timeout
    }

    /// Writes `data` (whole units, except at close) into the file's groups.
    async fn write_unit(&mut self, data: Vec<u8>) -> Result<(), FileError> {
        let mut rest = &data[..];
        while !rest.is_empty() {
            let full = self.group.as_ref().is_none_or(|g| g.bytes >= self.capacity);
            if full {
                self.next_group().await?;
            }
            let room = self
                .group
                .as_ref()
                .map_or(0, |g| self.capacity.saturating_sub(g.bytes));
            let take = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            let (now, later) = rest.split_at(take);
            self.write_to_group(now).await?;
            rest = later;
        }
        Ok(())
    }

    /// The bytes each internal block of the group gets for `data`: the same packet for
    /// every replica, or a stripe's k data cells and m parity cells.
    async fn cut(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, FileError> {
        let (Some(layout), Some(codec)) = (self.policy.layout(), self.codec.clone()) else {
            // One copy per replica the group actually has (a small cluster may give fewer
            // than the replication factor).
            let replicas = self.group.as_ref().map_or(0, |g| g.slots.len());
            return Ok(vec![data.to_vec(); replicas]);
        };
        let cell =
            usize::try_from(layout.stripe_data() / codec.data_cells() as u64).unwrap_or(usize::MAX);
        let k = codec.data_cells();
        let m = codec.parity_cells();
        let cells: Vec<Vec<u8>> = (0..k)
            .map(|i| {
                let start = (i * cell).min(data.len());
                let end = ((i + 1) * cell).min(data.len());
                data[start..end].to_vec()
            })
            .collect();
        // Parity cells are as long as the stripe's longest data cell (cell 0); shorter data
        // cells count as zero-padded, as in HDFS.
        let plen = cells[0].len();
        let parity = tokio::task::spawn_blocking(move || -> Result<_, FileError> {
            let padded: Vec<Vec<u8>> = cells
                .iter()
                .map(|c| {
                    let mut p = c.clone();
                    p.resize(plen, 0);
                    p
                })
                .collect();
            let data_refs: Vec<&[u8]> = padded.iter().map(Vec::as_slice).collect();
            let mut parity = vec![vec![0u8; plen]; m];
            let mut parity_refs: Vec<&mut [u8]> =
                parity.iter_mut().map(Vec::as_mut_slice).collect();
            codec.encode(&data_refs, &mut parity_refs)?;
            Ok((cells, parity))
        })
        .await
        .map_err(|e| FileError::Unreadable {
            group: GroupId::default(),
            offset: 0,
            why: format!("encode task: {e}"),
        })??;
        let (mut cells, parity) = parity;
        cells.extend(parity);
        Ok(cells)
    }

    /// Writes `data` (at most what the open group has room for) into the open group.
    async fn write_to_group(&mut self, data: &[u8]) -> Result<(), FileError> {
        let pieces = self.cut(data).await?;
        let timeout = self.timeout();
        let client = self.client.clone();
        let Some(group) = self.group.as_mut() else {
            return Err(FileError::Closed);
        };
        let mut sends = Vec::new();
        for (i, piece) in pieces.into_iter().enumerate() {
            if piece.is_empty() {
                continue;
            }
            let slot = std::mem::replace(&mut group.slots[i], Slot::Failed);
            let stream = match slot {
                Slot::Failed => continue,
                Slot::Open(s) => s,
                Slot::NotOpened => {
                    let t = &group.targets[i];
                    match BlockStream::open(
                        &client,
                        t.node,
                        &t.addr,
                        group.id,
                        t.index,
                        &group.token,
                    ) {
                        Ok(s) => s,
                        Err(why) => {
                            group.why = Some(why);
                            self.excluded.push(t.node);
                            continue;
                        }
                    }
                }
            };
            sends.push(async move { (i, stream.node, stream.send(piece, timeout).await) });
        }
        for (i, node, r) in futures::future::join_all(sends).await {
            match r {
                Ok(s) => group.slots[i] = Slot::Open(s),
                Err(why) => {
                    tracing::warn!(group = %group.id, index = i, %why, "internal block write failed");
                    group.why = Some(why);
                    self.excluded.push(node);
                }
            }
        }
        group.bytes += data.len() as u64;
        self.written += data.len() as u64;
        self.check()
    }

    /// Fails the write when the open group lost more internal blocks than it tolerates.
    fn check(&self) -> Result<(), FileError> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        let width = group.slots.len();
        let failed = group.failed();
        let tolerated = match self.policy {
            StoragePolicy::Replicated(_) => width.saturating_sub(1),
            StoragePolicy::ErasureCoded { parity, .. } => usize::from(parity),
        };
        if failed <= tolerated {
            return Ok(());
        }
        Err(match &group.why {
            Some(BlockFailure::NoSpace(message)) => FileError::NoSpace {
                addr: group
                    .targets
                    .first()
                    .map(|t| t.addr.clone())
                    .unwrap_or_default(),
                message: message.clone(),
            },
            why => FileError::TooManyFailures {
                group: group.id,
                failed,
                width,
                why: why.as_ref().map(ToString::to_string).unwrap_or_default(),
            },
        })
    }

    /// Finalizes every internal block of the open group (each one fsynced on its server).
    async fn finish_group(&mut self) -> Result<(), FileError> {
        let timeout = self.timeout();
        let Some(group) = self.group.as_mut() else {
            return Ok(());
        };
        let mut finishing = Vec::new();
        for (i, slot) in group.slots.iter_mut().enumerate() {
            if let Slot::Open(_) = slot {
                let Slot::Open(s) = std::mem::replace(slot, Slot::Failed) else {
                    continue;
                };
                finishing.push(async move { (i, s.node, s.finish(timeout).await) });
            }
        }
        for (i, node, r) in futures::future::join_all(finishing).await {
            match r {
                Ok(_) => group.slots[i] = Slot::NotOpened,
                Err(why) => {
                    tracing::warn!(group = %group.id, index = i, %why, "internal block finalize failed");
                    group.why = Some(why);
                    self.excluded.push(node);
                }
            }
        }
        self.check()
    }

    /// Finishes the open group and allocates the next.
    async fn next_group(&mut self) -> Result<(), FileError> {
        self.finish_group().await?;
        self.excluded.sort_unstable();
        self.excluded.dedup();
        let (_, group) = self
            .client
            .add_block(&self.path, self.written, &self.excluded)
            .await?;
        let width = group.targets.len();
        // The metaserver's answer decides how many streams there are; one that does not fit
        // the policy is refused here rather than indexed past later.
        let fits = match self.policy {
            StoragePolicy::Replicated(n) => (1..=usize::from(n)).contains(&width),
            StoragePolicy::ErasureCoded { .. } => width == self.policy.width(),
        };
        if !fits {
            return Err(FileError::TooManyFailures {
                group: group.id,
                failed: self.policy.width().saturating_sub(width),
                width: self.policy.width(),
                why: format!("the metaserver placed the group on {width} servers"),
            });
        }
        self.group = Some(OpenGroup {
            id: group.id,
            targets: group.targets,
            token: group.token,
            slots: (0..width).map(|_| Slot::NotOpened).collect(),
            bytes: 0,
            why: None,
        });
        Ok(())
    }

    /// Writes what is buffered, finalizes the last group and completes the file; returns
    /// its length.
    async fn close(mut self: Box<Self>) -> Result<u64, FileError> {
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() {
            self.write_unit(rest).await?;
        }
        self.finish_group().await?;
        self.client.complete(&self.path, self.written).await?;
        Ok(self.written)
    }
}
