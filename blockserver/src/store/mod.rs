//! Internal blocks on disk (DESIGN §6): one data file per block and a checksum file holding a
//! CRC32C per 64 KiB chunk.
//!
//! A block is written under a temporary name and becomes visible only when finalized: data
//! and checksums fsynced, both renamed into `finalized/`, the directory fsynced. A crash
//! therefore leaves either a whole finalized block or temporary files, which [`Store::open`]
//! removes (an unfinalized block was never acknowledged). Every read verifies the checksum of
//! each chunk it touches and says which chunk is corrupt, so that the caller can report the
//! block to the active and read another copy.
//!
//! The store is synchronous: the server calls it from blocking threads, and the page cache
//! and one `fsync` per block are what bound its speed, not the calling convention.

// The checksum file's format is the store's own; the fuzz targets (`fuzz/`, which build
// this crate with the `fuzzing` feature) parse and verify it directly.
#[cfg(feature = "fuzzing")]
pub mod checksum;
#[cfg(not(feature = "fuzzing"))]
mod checksum;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use checksum::CHUNK;
use checksum::ChecksumFile;
pub use raftfs_core::id::Generation;

/// An internal block: in the block pool `pool` (a nameservice's, DESIGN §10; group ids are
/// scoped by pool), block group `group`, position `index` in it (0 for a replicated block;
/// 0..k+m for the cells of an erasure-coded group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId {
    pub pool: u64,
    pub group: u64,
    pub index: u16,
}

impl BlockId {
    /// The file name within its pool's directory (the directory says the pool).
    fn file_name(&self) -> String {
        format!("blk_{:016x}_{}", self.group, self.index)
    }

    fn parse(name: &str, pool: u64) -> Option<Self> {
        let rest = name.strip_prefix("blk_")?;
        let (group, index) = rest.split_once('_')?;
        Some(Self {
            pool,
            group: u64::from_str_radix(group, 16).ok()?,
            index: index.parse().ok()?,
        })
    }
}

impl std::fmt::Display for BlockId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pool == raftfs_core::block_token::DEFAULT_POOL {
            write!(f, "{}", self.file_name())
        } else {
            write!(f, "{:016x}/{}", self.pool, self.file_name())
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("block {0} not found")]
    NotFound(BlockId),
    #[error("block {0} already exists")]
    AlreadyExists(BlockId),
    /// A chunk whose data does not match its checksum (or a damaged checksum file).
    #[error("block {block} is corrupt at chunk {chunk} (byte {offset}): {why}")]
    Corrupt {
        block: BlockId,
        chunk: u64,
        offset: u64,
        why: String,
    },
    /// Lease recovery asked to restamp a block that a later recovery already stamped newer.
    #[error("block {block} is at generation {stamped}, newer than {asked}")]
    NewerGeneration {
        block: BlockId,
        stamped: Generation,
        asked: Generation,
    },
    #[error("block {block} has {length} bytes; {offset}+{len} is beyond them")]
    OutOfRange {
        block: BlockId,
        length: u64,
        offset: u64,
        len: u64,
    },
    /// The volume is full: nothing was finalized.
    #[error("no space left on {0}")]
    NoSpace(PathBuf),
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| {
        if source.kind() == io::ErrorKind::StorageFull {
            StoreError::NoSpace(path.to_owned())
        } else {
            StoreError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// One data directory of internal blocks.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// The pool whose blocks this directory holds.
    pool: u64,
    /// Held while a block's two files change in `finalized/` (a finalize, a delete): two
    /// streams of one block (a retried client, a cancelled reconstruction still finishing
    /// while its rescheduled task starts) otherwise interleaved their renames into a data
    /// file beside another stream's checksums, read back as corrupt, or put a short block
    /// over a complete one.
    finalizing: Arc<Mutex<()>>,
}

fn lock(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    /// Opens (creating) the store of the unnamed nameservice's pool in `root`; removes the
    /// temporary files of blocks a crash interrupted.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        Self::open_pool(root, raftfs_core::block_token::DEFAULT_POOL)
    }

    /// Opens (creating) the store of pool `pool` in `root`, as [`Store::open`].
    pub fn open_pool(root: &Path, pool: u64) -> Result<Self, StoreError> {
        let store = Self {
            root: root.to_owned(),
            pool,
            finalizing: Arc::default(),
        };
        for dir in [store.finalized_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let tmp = store.tmp_dir();
        for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let path = entry.map_err(io_err(&tmp))?.path();
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
        Ok(store)
    }

    /// The directory this store keeps its blocks under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn finalized_dir(&self) -> PathBuf {
        self.root.join("finalized")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn data_path(&self, id: BlockId) -> PathBuf {
        self.finalized_dir().join(id.file_name())
    }

    fn meta_path(&self, id: BlockId) -> PathBuf {
        self.finalized_dir().join(format!("{}.crc", id.file_name()))
    }

    /// Starts writing block `id`, stamped `generation`; nothing is visible until
    /// [`BlockWriter::finalize`].
    ///
    /// Every writer has its own temporary name, so that two writers of one block (a client
    /// retrying while its first stream is still open) never write into each other's file.
    pub fn create(&self, id: BlockId, generation: Generation) -> Result<BlockWriter, StoreError> {
        static NEXT_TMP: AtomicU64 = AtomicU64::new(0);
        if self.data_path(id).exists() {
            return Err(StoreError::AlreadyExists(id));
        }
        let seq = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!("{}.{seq}", id.file_name());
        let data_path = self.tmp_dir().join(&tmp_name);
        let meta_tmp_path = self.tmp_dir().join(format!("{tmp_name}.crc"));
        let data = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&data_path)
            .map_err(io_err(&data_path))?;
        Ok(BlockWriter {
            id,
            data,
            data_path,
            meta_tmp_path,
            finalized_dir: self.finalized_dir(),
            finalizing: self.finalizing.clone(),
            checksums: ChecksumFile::new(generation),
            pending: Vec::with_capacity(CHUNK),
            length: 0,
            finalized: false,
        })
    }

    /// The length of a finalized block.
    pub fn length(&self, id: BlockId) -> Result<u64, StoreError> {
        let path = self.data_path(id);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound(id)),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The generation a finalized block is stamped with (its checksum file's header).
    pub fn generation(&self, id: BlockId) -> Result<Generation, StoreError> {
        let path = self.meta_path(id);
        let mut head = Vec::with_capacity(checksum::HEADER);
        match File::open(&path) {
            Ok(f) => f
                .take(checksum::HEADER as u64)
                .read_to_end(&mut head)
                .map_err(io_err(&path))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A block is visible once its data file is; its checksums are renamed in
                // first, so a data file without them is a damaged block.
                self.length(id)?;
                return Err(checksum::corrupt(id, "missing"));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        ChecksumFile::parse_generation(&head, id)
    }

    /// Stamps finalized block `id` with `generation` (lease recovery settled the group at
    /// it) and returns the block's length. A block already at `generation` is left as it is;
    /// one stamped newer is refused (`NewerGeneration`): a later recovery owns it. The
    /// checksum file is rewritten under a temporary name and renamed over the old one, so a
    /// crash leaves one stamp or the other, never a damaged file.
    pub fn restamp(&self, id: BlockId, generation: Generation) -> Result<u64, StoreError> {
        let _finalizing = lock(&self.finalizing);
        let length = self.length(id)?;
        let meta = self.meta_path(id);
        let mut sums = ChecksumFile::load(&meta, id, length)?;
        let stamped = sums.generation();
        if stamped > generation {
            return Err(StoreError::NewerGeneration {
                block: id,
                stamped,
                asked: generation,
            });
        }
        if stamped == generation {
            return Ok(length);
        }
        sums.restamp(generation);
        let tmp = self
            .tmp_dir()
            .join(format!("{}.restamp.crc", id.file_name()));
        sums.write(&tmp)?;
        fs::rename(&tmp, &meta).map_err(io_err(&meta))?;
        let dir = self.finalized_dir();
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))?;
        Ok(length)
    }

    /// A finalized block's length, generation and stored chunk checksums (a file checksum is
    /// put together from them without reading the bytes; DESIGN §6).
    pub fn checksums(&self, id: BlockId) -> Result<(u64, Generation, Vec<u32>), StoreError> {
        let length = self.length(id)?;
        let sums = ChecksumFile::load(&self.meta_path(id), id, length)?;
        Ok((length, sums.generation(), sums.sums().to_vec()))
    }

    /// Reads `len` bytes at `offset` of a finalized block, verifying every chunk touched.
    pub fn read(&self, id: BlockId, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let chunks = self.read_chunks(id, offset, len)?;
        let start = usize::try_from(offset - chunks.offset).unwrap_or(usize::MAX);
        let stop = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(chunks
            .data
            .get(start..stop)
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    }

    /// The whole chunks that hold `[offset, offset+len)` of a finalized block (the last one
    /// ends at the block's end), verified, with the checksums stored when the block was
    /// written: what a reader checks the bytes against again once they reach it.
    pub fn read_chunks(&self, id: BlockId, offset: u64, len: u64) -> Result<Chunks, StoreError> {
        let length = self.length(id)?;
        let end =
            offset
                .checked_add(len)
                .filter(|e| *e <= length)
                .ok_or(StoreError::OutOfRange {
                    block: id,
                    length,
                    offset,
                    len,
                })?;
        let chunk = CHUNK as u64;
        let meta_path = self.meta_path(id);
        let sums = ChecksumFile::load(&meta_path, id, length)?;
        if len == 0 {
            return Ok(Chunks {
                offset: offset - offset % chunk,
                data: Vec::new(),
                sums: Vec::new(),
                generation: sums.generation(),
            });
        }
        let (first, last) = (offset / chunk, (end - 1) / chunk);
        let path = self.data_path(id);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            // Deleted since its length was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound(id)),
            Err(e) => return Err(io_err(&path)(e)),
        };
        file.seek(SeekFrom::Start(first * chunk))
            .map_err(io_err(&path))?;
        let span = usize::try_from((last + 1) * chunk - first * chunk)
            .map_err(|_| io_err(&path)(io::Error::other("read too large")))?;
        let mut buf = vec![0u8; span];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        buf.truncate(filled);
        let mut stored = Vec::with_capacity(usize::try_from(last - first + 1).unwrap_or(0));
        for c in first..=last {
            let from = usize::try_from((c - first) * chunk).unwrap_or(usize::MAX);
            let to = (from.saturating_add(CHUNK)).min(buf.len());
            let got = buf.get(from..to).unwrap_or_default();
            match sums.get(c) {
                Some(sum) if crc32c::crc32c(got) == sum => {
                    stored.push(sum);
                }
                _ => {
                    return Err(StoreError::Corrupt {
                        block: id,
                        chunk: c,
                        offset: c * chunk,
                        why: "checksum mismatch".into(),
                    });
                }
            }
        }
        Ok(Chunks {
            offset: first * chunk,
            data: buf,
            sums: stored,
            generation: sums.generation(),
        })
    }

    /// Removes a finalized block.
    pub fn delete(&self, id: BlockId) -> Result<(), StoreError> {
        self.delete_up_to(id, None).map(|_| ())
    }

    /// Removes a finalized block if it is stamped `up_to` or older (any, for `None`);
    /// returns whether it did. A deletion the active ordered for a copy it saw at some
    /// generation must not remove the copy a lease recovery has restamped since (the
    /// active's view lags the blockserver's reports); the check and the removal are one
    /// step against a restamp.
    pub fn delete_up_to(&self, id: BlockId, up_to: Option<Generation>) -> Result<bool, StoreError> {
        let _finalizing = lock(&self.finalizing);
        if let Some(up_to) = up_to {
            match self.generation(id) {
                Ok(stamped) if stamped > up_to => return Ok(false),
                // A damaged checksum file: nothing newer to keep.
                Ok(_) | Err(StoreError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let data = self.data_path(id);
        match fs::remove_file(&data) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound(id)),
            Err(e) => return Err(io_err(&data)(e)),
        }
        let meta = self.meta_path(id);
        match fs::remove_file(&meta) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(io_err(&meta)(e)),
        }
    }

    /// Every finalized block with its length and generation: what a full block report
    /// sends. A block whose checksum file is unreadable is listed at the first generation
    /// (the scanner finds it corrupt and reports it so).
    pub fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let dir = self.finalized_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(|n| BlockId::parse(n, self.pool)) {
                let length = entry.metadata().map_err(io_err(&entry.path()))?.len();
                let generation = match self.generation(id) {
                    Ok(g) => g,
                    Err(StoreError::Io { path, source }) => {
                        return Err(StoreError::Io { path, source });
                    }
                    // Deleted since it was listed, or damaged: nothing newer to claim.
                    Err(_) => Generation::FIRST,
                };
                out.push(Listed {
                    id,
                    length,
                    generation,
                });
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A finalized block as a block report lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    pub id: BlockId,
    pub length: u64,
    pub generation: Generation,
}

/// Whole chunks of a block as read, verified, with their stored checksums.
#[derive(Debug)]
pub struct Chunks {
    /// Block offset of the first byte (a chunk boundary).
    pub offset: u64,
    pub data: Vec<u8>,
    /// One per chunk of `data`.
    pub sums: Vec<u32>,
    /// The generation the block is stamped with.
    pub generation: Generation,
}

/// A block being written: bytes go to a temporary file, checksums are computed per chunk.
/// Dropped without [`BlockWriter::finalize`] (a write refused for space, a failed finalize),
/// it removes its temporary files at once rather than leaving them to the next open: a full
/// volume must get its space back.
#[derive(Debug)]
pub struct BlockWriter {
    id: BlockId,
    data: File,
    data_path: PathBuf,
    meta_tmp_path: PathBuf,
    finalized_dir: PathBuf,
    /// The store's lock over its finalized files.
    finalizing: Arc<Mutex<()>>,
    checksums: ChecksumFile,
    /// The bytes of the chunk not yet complete.
    pending: Vec<u8>,
    length: u64,
    /// Set once the block is visible: nothing left to clean up.
    finalized: bool,
}

impl BlockWriter {
    /// Appends `buf` to the block.
    pub fn write(&mut self, mut buf: &[u8]) -> Result<(), StoreError> {
        self.data.write_all(buf).map_err(io_err(&self.data_path))?;
        self.length += buf.len() as u64;
        while !buf.is_empty() {
            let take = (CHUNK - self.pending.len()).min(buf.len());
            self.pending.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.pending.len() == CHUNK {
                self.checksums.push(&self.pending);
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// The block being written.
    pub fn id(&self) -> BlockId {
        self.id
    }

    /// Bytes written so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The generation the block is stamped with.
    pub fn generation(&self) -> Generation {
        self.checksums.generation()
    }

    /// Makes the block durable and visible; returns its length. On any error the block stays
    /// invisible and its temporary files are removed.
    pub fn finalize(mut self) -> Result<u64, StoreError> {
        if !self.pending.is_empty() {
            self.checksums.push(&self.pending);
        }
        self.data.sync_all().map_err(io_err(&self.data_path))?;
        self.checksums.write(&self.meta_tmp_path)?;
        let name = self.id.file_name();
        let data_final = self.finalized_dir.join(&name);
        let meta_final = self.finalized_dir.join(format!("{name}.crc"));
        {
            // One stream of a block wins whole; the others find it there and leave it be
            // (their temporary files go when they are dropped).
            let finalizing = self.finalizing.clone();
            let _finalizing = lock(&finalizing);
            if data_final.exists() {
                return Err(StoreError::AlreadyExists(self.id));
            }
            // Checksums first: a data file is never visible without its checksums.
            fs::rename(&self.meta_tmp_path, &meta_final).map_err(io_err(&meta_final))?;
            fs::rename(&self.data_path, &data_final).map_err(io_err(&data_final))?;
            self.finalized = true;
        }
        File::open(&self.finalized_dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.finalized_dir))?;
        Ok(self.length)
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if self.finalized {
            return;
        }
        for path in [&self.data_path, &self.meta_tmp_path] {
            if let Err(e) = fs::remove_file(path)
                && e.kind() != io::ErrorKind::NotFound
            {
                // Store::open removes it at the next start.
                tracing::warn!(path = %path.display(), error = %e, "removing an unfinalized block");
            }
        }
    }
}

#[cfg(test)]
mod tests;
