//! The async file reader (DESIGN §6): `AsyncRead` + `AsyncSeek` over a closed file.
//!
//! A replicated range is read from one replica, the next one on failure. An erasure-coded
//! range is read cell piece by cell piece, only from the internal blocks that hold it, all
//! pieces of a stripe in parallel; when a piece's block is missing, corrupt or slower than
//! `block_read_timeout`, the reader reads that stripe's cells from any k other internal
//! blocks and decodes the missing data (a degraded read). A corrupt copy is reported to the
//! metaservers.
//!
//! The reader fetches the file's block groups a page at a time, by offset, as it reads (a
//! file of millions of groups is opened as fast as one of a single group, and the reader
//! holds one page of them): a closed file's groups do not change (an append adds groups
//! after them; reopen to see them). A page fetched after the file was replaced or deleted
//! ends the read with [`FileError::Replaced`].

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tokio::task::JoinHandle;

use super::FileError;
use super::block_io::{self, BlockFailure};
use crate::client::Client;
use crate::model::{BlockLocation, LocatedGroup};
use raftfs_codec::ErasureCodec;
use raftfs_core::StoragePolicy;
use raftfs_core::id::GroupId;
use raftfs_core::layout::Layout;

/// Most bytes one background fetch reads (whole stripes of an EC file when they fit).
const FETCH: u64 = 8 << 20;

/// A group's token is renewed (its page fetched again) when it has less than this to run.
const TOKEN_MARGIN_MS: u64 = 60_000;

/// The wall clock, ms since the epoch (tokens carry the signing metaserver's).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads one file.
#[derive(Debug)]
pub struct FileReader {
    core: Arc<Core>,
    pos: u64,
    /// Bytes fetched, starting at file offset `buf_at`.
    buf: Vec<u8>,
    buf_at: u64,
    fetch: Option<Fetch>,
}

/// A background read: the file offset and the bytes read there.
type Fetch = JoinHandle<Result<(u64, Vec<u8>), FileError>>;

struct Core {
    client: Client,
    path: String,
    policy: StoragePolicy,
    codec: Option<Arc<dyn ErasureCodec>>,
    /// The file's inode: a page fetched later must be of the same file.
    file_id: u64,
    /// The page of groups fetched last.
    window: std::sync::Mutex<Vec<LocatedGroup>>,
    length: u64,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    /// Opens `path` for reading.
    pub async fn open(client: &Client, path: &str) -> Result<Self, FileError> {
        let per_fetch = client.config().block_groups_per_fetch;
        let first = client.get_blocks(path, 0, 0, per_fetch).await?;
        let status = &first.file;
        let policy = status.storage_policy.parse::<StoragePolicy>()?;
        let codec = raftfs_codec::for_policy(&policy)?.map(Arc::from);
        // A file being written is read up to its closed groups. A metaserver from before
        // paged replies sends no readable length, but every group.
        let readable = match (first.readable_length, first.groups.last()) {
            (0, Some(last)) if !first.more => last.offset.saturating_add(last.length),
            (n, _) => n,
        };
        let length = readable.min(status.length);
        Ok(Self {
            core: Arc::new(Core {
                client: client.clone(),
                path: path.to_owned(),
                policy,
                codec,
                file_id: status.id,
                window: std::sync::Mutex::new(first.groups),
                length,
            }),
            pos: 0,
            buf: Vec::new(),
            buf_at: 0,
            fetch: None,
        })
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.core.length
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.core.length == 0
    }

    /// Reads `len` bytes at `offset` (fewer at the end of the file).
    pub async fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, FileError> {
        self.core.read_at(offset, len).await
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let end = self.buf_at + self.buf.len() as u64;
            if self.pos >= self.buf_at && self.pos < end {
                let from = usize::try_from(self.pos - self.buf_at).unwrap_or(0);
                let n = out.remaining().min(self.buf.len() - from);
                out.put_slice(&self.buf[from..from + n]);
                self.pos += n as u64;
                return Poll::Ready(Ok(()));
            }
            if self.pos >= self.core.length {
                return Poll::Ready(Ok(()));
            }
            if self.fetch.is_none() {
                let core = self.core.clone();
                let at = self.pos;
                self.fetch = Some(tokio::spawn(async move {
                    core.read_at(at, FETCH).await.map(|b| (at, b))
                }));
            }
            let Some(task) = self.fetch.as_mut() else {
                continue;
            };
            let r = ready!(Pin::new(task).poll(cx));
            self.fetch = None;
            match r {
                Ok(Ok((at, bytes))) => {
                    self.buf_at = at;
                    self.buf = bytes;
                }
                Ok(Err(e)) => return Poll::Ready(Err(e.into())),
                Err(e) => return Poll::Ready(Err(io::Error::other(format!("read task: {e}")))),
            }
        }
    }
}

impl AsyncSeek for FileReader {
    fn start_seek(mut self: Pin<&mut Self>, pos: SeekFrom) -> io::Result<()> {
        let to = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.core.length.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let to = to.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        if let Some(task) = self.fetch.take() {
            task.abort();
        }
        self.pos = to;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

impl Core {
    /// Reads up to `len` bytes at `offset`.
    async fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, FileError> {
        let end = offset.saturating_add(len).min(self.length);
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(offset)).unwrap_or(0));
        let mut at = offset;
        while at < end {
            let group = self.group_at(at).await?;
            let (bytes, n) = match self.read_in_group(&group, at, end).await {
                Ok(read) => read,
                // Once more with the group as the metaserver sees it now: a fresh token (one
                // a blockserver refused: expired by its clock, signed by a key it lost) and
                // where the copies are now (rebuilt elsewhere since the page was fetched).
                Err(FileError::Unreadable { why, .. }) => {
                    tracing::info!(group = %group.id, %why, "group unreadable: asking again");
                    self.lock_window().clear();
                    let group = self.group_at(at).await?;
                    self.read_in_group(&group, at, end).await?
                }
                Err(e) => return Err(e),
            };
            out.extend_from_slice(&bytes);
            at += n;
        }
        Ok(out)
    }

    /// The bytes of `group` from file offset `at` to `end` or the group's end; and how many.
    async fn read_in_group(
        &self,
        group: &LocatedGroup,
        at: u64,
        end: u64,
    ) -> Result<(Vec<u8>, u64), FileError> {
        let in_group = at - group.offset;
        let n = (group.length - in_group).min(end - at);
        let bytes = match (self.policy.layout(), &self.codec) {
            (Some(layout), Some(codec)) => {
                self.read_striped(group, layout, codec.clone(), in_group, n)
                    .await?
            }
            _ => self.read_replicated(group, in_group, n).await?,
        };
        Ok((bytes, n))
    }

    /// The group that holds file offset `at`: from the page fetched last while its block
    /// access token has [`TOKEN_MARGIN_MS`] to run, or from a new page (new tokens) fetched
    /// from `at` on: a reader open for longer than a token's lifetime goes on reading.
    async fn group_at(&self, at: u64) -> Result<LocatedGroup, FileError> {
        let holds = |g: &LocatedGroup| g.offset <= at && at < g.offset.saturating_add(g.length);
        let now = now_ms();
        if let Some(g) = self
            .lock_window()
            .iter()
            .find(|g| holds(g) && g.token.fresh(now, TOKEN_MARGIN_MS))
        {
            return Ok(g.clone());
        }
        let per_fetch = self.client.config().block_groups_per_fetch;
        let page = self.client.get_blocks(&self.path, at, 0, per_fetch).await?;
        if page.file.id != self.file_id {
            return Err(FileError::Replaced {
                path: self.path.clone(),
            });
        }
        let found = page.groups.iter().find(|g| holds(g)).cloned();
        *self.lock_window() = page.groups;
        found.ok_or_else(|| FileError::Unreadable {
            group: GroupId::default(),
            offset: at,
            why: "no block group holds this offset".into(),
        })
    }

    fn lock_window(&self) -> std::sync::MutexGuard<'_, Vec<LocatedGroup>> {
        match self.window.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn report(&self, group: GroupId, loc: &BlockLocation, why: &BlockFailure) {
        if let BlockFailure::Corrupt(reason) = why {
            self.client
                .report_corrupt(group, loc.index, loc.node, reason)
                .await;
        }
    }

    async fn read_replicated(
        &self,
        group: &LocatedGroup,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, FileError> {
        let timeout = self.client.config().block_read_timeout;
        let mut last = String::from("no replica is known");
        for loc in group.copies(0) {
            match block_io::read(&self.client, &loc.addr, group, 0, offset, len, timeout).await {
                Ok(bytes) => return Ok(bytes),
                Err(why) => {
                    tracing::warn!(group = %group.id, node = %loc.node, %why, "replica read failed");
                    self.report(group.id, loc, &why).await;
                    last = why.to_string();
                }
            }
        }
        Err(FileError::Unreadable {
            group: group.id,
            offset: group.offset + offset,
            why: last,
        })
    }

    /// Reads `len` bytes at group offset `offset` of a striped group, stripe by stripe.
    async fn read_striped(
        &self,
        group: &LocatedGroup,
        layout: Layout,
        codec: Arc<dyn ErasureCodec>,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, FileError> {
        let pieces =
            layout
                .pieces(offset, len, group.length)
                .map_err(|e| FileError::Unreadable {
                    group: group.id,
                    offset,
                    why: e.to_string(),
                })?;
        let mut by_stripe: BTreeMap<u64, Vec<raftfs_core::layout::Piece>> = BTreeMap::new();
        for p in pieces {
            by_stripe.entry(p.stripe).or_default().push(p);
        }
        let stripes = by_stripe.into_iter().map(|(stripe, pieces)| {
            let codec = codec.clone();
            async move {
                self.read_stripe(group, layout, codec, stripe, &pieces)
                    .await
                    .map(|bytes| (pieces, bytes))
            }
        });
        let mut out = vec![0u8; usize::try_from(len).unwrap_or(0)];
        for r in futures::future::join_all(stripes).await {
            let (pieces, cells) = r?;
            for (p, bytes) in pieces.iter().zip(cells) {
                let at = usize::try_from(p.buf_offset).unwrap_or(0);
                out[at..at + bytes.len()].copy_from_slice(&bytes);
            }
        }
        Ok(out)
    }

    /// The bytes of `pieces` (all in `stripe`): read directly, or decoded when a block fails.
    async fn read_stripe(
        &self,
        group: &LocatedGroup,
        layout: Layout,
        codec: Arc<dyn ErasureCodec>,
        stripe: u64,
        pieces: &[raftfs_core::layout::Piece],
    ) -> Result<Vec<Vec<u8>>, FileError> {
        let timeout = self.client.config().block_read_timeout;
        let direct = pieces.iter().map(|p| async move {
            let mut last = BlockFailure::Other(format!("no copy of internal block {}", p.block));
            for loc in group.copies(p.block as u32) {
                match block_io::read(
                    &self.client,
                    &loc.addr,
                    group,
                    loc.index,
                    p.block_offset,
                    p.len,
                    timeout,
                )
                .await
                {
                    Ok(bytes) => return Ok(bytes),
                    Err(why) => {
                        self.report(group.id, loc, &why).await;
                        last = why;
                    }
                }
            }
            Err((p.block, last))
        });
        let results = futures::future::join_all(direct).await;
        let mut failed = Vec::new();
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(b) => out.push(b),
                Err((block, why)) => {
                    tracing::warn!(group = %group.id, block, %why, "degraded read: decoding around it");
                    failed.push(block);
                    out.push(Vec::new());
                }
            }
        }
        if failed.is_empty() {
            return Ok(out);
        }
        let cells = self
            .decode_stripe(group, layout, codec.clone(), stripe, &failed)
            .await?;
        let cell = layout.stripe_data() / codec.data_cells() as u64;
        for (p, slot) in pieces.iter().zip(out.iter_mut()) {
            if slot.is_empty() && p.len > 0 {
                let cell_bytes = &cells[p.block];
                let from = usize::try_from(p.block_offset - stripe * cell).unwrap_or(0);
                let to = from + usize::try_from(p.len).unwrap_or(0);
                *slot = cell_bytes
                    .get(from..to)
                    .ok_or_else(|| FileError::Unreadable {
                        group: group.id,
                        offset: p.block_offset,
                        why: "decoded cell is shorter than the piece".into(),
                    })?
                    .to_vec();
            }
        }
        Ok(out)
    }

    /// Reads stripe `stripe` from any k internal blocks other than `avoid` and decodes every
    /// data cell; returns the k data cells, each as long as the stripe's longest.
    async fn decode_stripe(
        &self,
        group: &LocatedGroup,
        layout: Layout,
        codec: Arc<dyn ErasureCodec>,
        stripe: u64,
        avoid: &[usize],
    ) -> Result<Vec<Vec<u8>>, FileError> {
        let timeout = self.client.config().block_read_timeout;
        let k = codec.data_cells();
        let width = layout.blocks();
        let cell = layout.stripe_data() / k as u64;
        let stripe_start = stripe * cell;
        // The length of each internal block's cell in this stripe; parity cells (and padded
        // data cells) are as long as cell 0.
        let cell_len = |i: usize| {
            layout
                .block_len(group.length, i)
                .saturating_sub(stripe_start)
                .min(cell)
        };
        let plen = cell_len(0);
        let fetches = (0..width)
            .filter(|i| !avoid.contains(i))
            .map(|i| async move {
                let len = cell_len(i);
                if len == 0 {
                    // A data cell past the end of the group: all zeros, nothing to read.
                    return Some((i, Vec::new()));
                }
                for loc in group.copies(i as u32) {
                    match block_io::read(
                        &self.client,
                        &loc.addr,
                        group,
                        loc.index,
                        stripe_start,
                        len,
                        timeout,
                    )
                    .await
                    {
                        Ok(bytes) => return Some((i, bytes)),
                        Err(why) => {
                            tracing::warn!(group = %group.id, index = i, node = %loc.node, %why, "internal block read failed");
                            self.report(group.id, loc, &why).await;
                        }
                    }
                }
                None
            });
        let got: Vec<(usize, Vec<u8>)> = futures::future::join_all(fetches)
            .await
            .into_iter()
            .flatten()
            .collect();
        if got.len() < k {
            return Err(FileError::Unreadable {
                group: group.id,
                offset: stripe_start,
                why: format!(
                    "only {} of the {k} internal blocks needed are readable",
                    got.len()
                ),
            });
        }
        let plen_usize = usize::try_from(plen).unwrap_or(0);
        tokio::task::spawn_blocking(move || -> Result<Vec<Vec<u8>>, FileError> {
            let mut cells: Vec<Option<Vec<u8>>> = vec![None; width];
            for (i, mut bytes) in got {
                bytes.resize(plen_usize, 0);
                cells[i] = Some(bytes);
            }
            let lost: Vec<usize> = (0..k).filter(|i| cells[*i].is_none()).collect();
            let mut rebuilt = vec![vec![0u8; plen_usize]; lost.len()];
            {
                let refs: Vec<Option<&[u8]>> = cells.iter().map(|c| c.as_deref()).collect();
                let mut outs: Vec<&mut [u8]> = rebuilt.iter_mut().map(Vec::as_mut_slice).collect();
                if !lost.is_empty() {
                    codec.decode(&refs, &lost, &mut outs)?;
                }
            }
            for (i, bytes) in lost.into_iter().zip(rebuilt) {
                cells[i] = Some(bytes);
            }
            Ok(cells
                .into_iter()
                .take(k)
                .map(Option::unwrap_or_default)
                .collect())
        })
        .await
        .map_err(|e| FileError::Unreadable {
            group: group.id,
            offset: stripe_start,
            why: format!("decode task: {e}"),
        })?
    }
}
