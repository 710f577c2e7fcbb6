//! Reads of an open file. The kernel asks for at most 1 MiB at a time, several at once and
//! not always in order (its readahead); a blockserver round trip per request would cap a
//! sequential read far below what the client's reader does. So a sequential reader is
//! served from whole chunks fetched once, the next chunk fetched while the current one is
//! read; a request that does not follow the last one (a random read) is read as asked, so
//! that random reads do not fetch a chunk each.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use raftfs_client::FileReader;

use crate::error::FsError;

/// Bytes per chunk.
const CHUNK: u64 = 8 << 20;

/// Chunks kept: the one being read, the one fetched ahead, and one behind for requests that
/// arrive out of order.
const KEPT: usize = 3;

/// A chunk's fetch, awaited by every request that falls in it.
type Fetch = Shared<BoxFuture<'static, Result<Arc<Vec<u8>>, Arc<FsError>>>>;

/// The bytes of a read: a range of a chunk, or bytes of their own.
#[derive(Debug)]
pub enum Bytes {
    Chunk(Arc<Vec<u8>>, std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl Bytes {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Chunk(chunk, range) => chunk.get(range.clone()).unwrap_or_default(),
            Bytes::Owned(v) => v,
        }
    }
}

/// One open file's reader and its chunks.
#[derive(Debug)]
pub struct ReadAhead {
    reader: Arc<FileReader>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (chunk index, its fetch), oldest first.
    chunks: VecDeque<(u64, Fetch)>,
    /// Where the last request ended: a request from here on is sequential.
    next: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field(
                "chunks",
                &self.chunks.iter().map(|c| c.0).collect::<Vec<_>>(),
            )
            .field("next", &self.next)
            .finish()
    }
}

impl ReadAhead {
    pub fn new(reader: FileReader) -> Self {
        Self {
            reader: Arc::new(reader),
            state: Mutex::new(State::default()),
        }
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.reader.len()
    }

    /// Whether the file was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.reader.is_empty()
    }

    /// Up to `size` bytes at `offset` (fewer at the end of the file).
    pub async fn read(&self, offset: u64, size: u32) -> Result<Bytes, Arc<FsError>> {
        let end = offset.saturating_add(u64::from(size)).min(self.len());
        if offset >= end {
            return Ok(Bytes::Owned(Vec::new()));
        }
        let Some(fetches) = self.sequential(offset, end) else {
            return self
                .reader
                .read_at(offset, end - offset)
                .await
                .map(Bytes::Owned)
                .map_err(|e| Arc::new(e.into()));
        };
        if let [(index, fetch)] = fetches.as_slice() {
            // Within one chunk (the usual case): answered from the chunk, not copied.
            let chunk = self.fetched(*index, fetch.clone()).await?;
            let start = index * CHUNK;
            let from = usize::try_from(offset - start)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            let to = usize::try_from(end - start)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            return Ok(Bytes::Chunk(chunk, from..to.max(from)));
        }
        let mut out = Vec::with_capacity(usize::try_from(end - offset).unwrap_or(0));
        let mut at = offset;
        for (index, fetch) in fetches {
            let bytes = self.fetched(index, fetch).await?;
            let start = index * CHUNK;
            let from = usize::try_from(at - start).unwrap_or(usize::MAX);
            let to = usize::try_from(end.min(start + CHUNK) - start).unwrap_or(usize::MAX);
            let Some(piece) = bytes.get(from..to.min(bytes.len())) else {
                break;
            };
            out.extend_from_slice(piece);
            at = start + to as u64;
        }
        Ok(Bytes::Owned(out))
    }

    /// What `fetch` of chunk `index` read; a failed fetch is dropped, so that the next read
    /// (a retry after a failover) fetches again.
    async fn fetched(&self, index: u64, fetch: Fetch) -> Result<Arc<Vec<u8>>, Arc<FsError>> {
        let r = fetch.await;
        if r.is_err() {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.chunks.retain(|(i, _)| *i != index);
        }
        r
    }

    /// The fetches of the chunks that hold `offset..end` when the request is sequential
    /// (started, or fetched ahead, for the chunk after them too); `None` for a random read.
    fn sequential(&self, offset: u64, end: u64) -> Option<Vec<(u64, Fetch)>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let first = offset / CHUNK;
        let held = state.chunks.iter().any(|(i, _)| *i == first);
        if !held && offset != state.next {
            return None;
        }
        state.next = state.next.max(end);
        let last = (end - 1) / CHUNK;
        let mut out = Vec::new();
        for index in first..=last {
            out.push((index, self.chunk(&mut state, index)));
        }
        if (last + 1) * CHUNK < self.len() {
            // Runs on its own; the next request finds it held.
            let _ahead = self.chunk(&mut state, last + 1);
        }
        while state.chunks.len() > KEPT {
            state.chunks.pop_front();
        }
        Some(out)
    }

    /// The fetch of chunk `index`, started if it is not held.
    fn chunk(&self, state: &mut State, index: u64) -> Fetch {
        if let Some((_, f)) = state.chunks.iter().find(|(i, _)| *i == index) {
            return f.clone();
        }
        let reader = self.reader.clone();
        let task = tokio::spawn(async move { reader.read_at(index * CHUNK, CHUNK).await });
        let fetch = async move {
            match task.await {
                Ok(Ok(bytes)) => Ok(Arc::new(bytes)),
                Ok(Err(e)) => Err(Arc::new(FsError::from(e))),
                Err(e) => Err(Arc::new(FsError::refused(
                    fuser::Errno::EIO,
                    format!("read task: {e}"),
                ))),
            }
        }
        .boxed()
        .shared();
        state.chunks.push_back((index, fetch.clone()));
        fetch
    }
}
