//! The checksum file of a block: a header and one CRC32C per chunk of the data file,
//! little-endian. CRC32C because CPUs compute it in hardware (and HDFS uses it too); one per
//! 64 KiB so that a read of a few bytes verifies one chunk, not a block.
//!
//! The header is `RFCK`, the version (a byte), the chunk size (u32), and from version 2 the
//! block's generation stamp (u64): the group generation the block was written or last
//! restamped at (as HDFS keeps a replica's generation stamp in its meta file's name). A file
//! of version 1 is a block of the first generation, and is how such a block is still written
//! (a binary of before generation stamps reads it); a block of a later generation is written
//! at version 2, and lease recovery restamps a block by rewriting its file.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use raftfs_core::id::Generation;

use super::{BlockId, StoreError, io_err};

/// Bytes covered by one checksum.
pub const CHUNK: usize = 64 * 1024;

const MAGIC: &[u8; 4] = b"RFCK";
const VERSION: u8 = 2;
/// The header of version 1: magic, version, chunk size.
const HEADER_V1: usize = 4 + 1 + 4;
/// The header of version 2: and the generation.
pub const HEADER: usize = HEADER_V1 + 8;

/// The checksums of one block, and its generation.
#[derive(Debug, PartialEq, Eq)]
pub struct ChecksumFile {
    sums: Vec<u32>,
    generation: Generation,
}

impl ChecksumFile {
    /// The (empty) checksums of a block being written at `generation`.
    pub fn new(generation: Generation) -> Self {
        Self {
            sums: Vec::new(),
            generation,
        }
    }

    /// The generation the block is stamped with.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Stamps the block with `generation` (lease recovery).
    pub fn restamp(&mut self, generation: Generation) {
        self.generation = generation;
    }

    /// Adds the checksum of the next chunk (the last may be short).
    pub fn push(&mut self, chunk: &[u8]) {
        self.sums.push(crc32c::crc32c(chunk));
    }

    /// Whether `data` is chunk `index` as it was written (for the fuzz target; the store
    /// reads through `get`).
    #[cfg(feature = "fuzzing")]
    pub fn verify(&self, index: u64, data: &[u8]) -> bool {
        self.get(index)
            .is_some_and(|sum| sum == crc32c::crc32c(data))
    }

    /// Every chunk's checksum, as written.
    pub fn sums(&self) -> &[u32] {
        &self.sums
    }

    /// The checksum of chunk `index`, as written.
    pub fn get(&self, index: u64) -> Option<u32> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.sums.get(i))
            .copied()
    }

    /// The file's bytes: the header, then each chunk's checksum. A block of the first
    /// generation is written at version 1 (which means the first): a binary of before
    /// generation stamps, rolled back to, still reads every block no recovery restamped.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER + 4 * self.sums.len());
        bytes.extend_from_slice(MAGIC);
        if self.generation == Generation::FIRST {
            bytes.push(1);
            bytes.extend_from_slice(&(CHUNK as u32).to_le_bytes());
        } else {
            bytes.push(VERSION);
            bytes.extend_from_slice(&(CHUNK as u32).to_le_bytes());
            bytes.extend_from_slice(&self.generation.get().to_le_bytes());
        }
        for s in &self.sums {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        bytes
    }

    /// Writes and fsyncs the file at `path`.
    pub fn write(&self, path: &Path) -> Result<(), StoreError> {
        let bytes = self.encode();
        let mut f = File::create(path).map_err(io_err(path))?;
        f.write_all(&bytes).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))
    }

    /// Reads the checksums of block `id` (of `length` bytes) from `path`; a damaged file is a
    /// corrupt block, not an I/O error.
    pub fn load(path: &Path, id: BlockId, length: u64) -> Result<Self, StoreError> {
        match fs::read(path) {
            Ok(bytes) => Self::parse(&bytes, id, length),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(corrupt(id, "missing")),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// The generation of block `id` from the first bytes of its checksum file (at least
    /// [`HEADER`] of them, or the whole file if shorter): what a block report sends, without
    /// reading every checksum.
    pub fn parse_generation(bytes: &[u8], id: BlockId) -> Result<Generation, StoreError> {
        Self::header(bytes, id).map(|(generation, _)| generation)
    }

    /// The generation and the header's length.
    fn header(bytes: &[u8], id: BlockId) -> Result<(Generation, usize), StoreError> {
        if bytes.len() < HEADER_V1 || &bytes[..4] != MAGIC {
            return Err(corrupt(id, "bad header"));
        }
        let chunk = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        if chunk as usize != CHUNK {
            return Err(corrupt(
                id,
                &format!("chunk size {chunk}, expected {CHUNK}"),
            ));
        }
        match bytes[4] {
            1 => Ok((Generation::FIRST, HEADER_V1)),
            2 => {
                let stamp = bytes
                    .get(HEADER_V1..HEADER)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
                    .ok_or_else(|| corrupt(id, "header cut short"))?;
                Ok((Generation(stamp), HEADER))
            }
            v => Err(corrupt(id, &format!("unknown version {v}"))),
        }
    }

    /// The checksums of block `id` (of `length` bytes) from the bytes of its checksum file:
    /// the header, then exactly one checksum per chunk of `length`.
    pub fn parse(bytes: &[u8], id: BlockId, length: u64) -> Result<Self, StoreError> {
        let (generation, header) = Self::header(bytes, id)?;
        let body = &bytes[header..];
        let chunks = length.div_ceil(CHUNK as u64);
        if !body.len().is_multiple_of(4) || body.len() as u64 != chunks * 4 {
            return Err(corrupt(
                id,
                &format!("{} bytes of checksums for {chunks} chunks", body.len()),
            ));
        }
        Ok(Self {
            sums: body
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            generation,
        })
    }
}

/// A damaged checksum file of block `id`.
pub(super) fn corrupt(id: BlockId, why: &str) -> StoreError {
    StoreError::Corrupt {
        block: id,
        chunk: 0,
        offset: 0,
        why: format!("checksum file: {why}"),
    }
}
