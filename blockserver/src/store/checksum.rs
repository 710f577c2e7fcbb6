//! The checksum file of a block: a header (`RFCK`, version 1, chunk size) and one CRC32C per
//! chunk of the data file, little-endian. CRC32C because CPUs compute it in hardware (and HDFS
//! uses it too); one per 64 KiB so that a read of a few bytes verifies one chunk, not a block.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::{BlockId, StoreError, io_err};

/// Bytes covered by one checksum.
pub const CHUNK: usize = 64 * 1024;

const MAGIC: &[u8; 4] = b"RFCK";
const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 4;

/// The checksums of one block.
#[derive(Debug, Default)]
pub struct ChecksumFile {
    sums: Vec<u32>,
}

impl ChecksumFile {
    pub fn new() -> Self {
        Self::default()
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

    /// The checksum of chunk `index`, as written.
    pub fn get(&self, index: u64) -> Option<u32> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.sums.get(i))
            .copied()
    }

    /// The file's bytes: the header, then each chunk's checksum.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER + 4 * self.sums.len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&(CHUNK as u32).to_le_bytes());
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

    /// The checksums of block `id` (of `length` bytes) from the bytes of its checksum file:
    /// the header, then exactly one checksum per chunk of `length`.
    pub fn parse(bytes: &[u8], id: BlockId, length: u64) -> Result<Self, StoreError> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(corrupt(id, "bad header"));
        }
        if bytes[4] != VERSION {
            return Err(corrupt(id, &format!("unknown version {}", bytes[4])));
        }
        let chunk = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        if chunk as usize != CHUNK {
            return Err(corrupt(
                id,
                &format!("chunk size {chunk}, expected {CHUNK}"),
            ));
        }
        let body = &bytes[HEADER..];
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
        })
    }
}

/// A damaged checksum file of block `id`.
fn corrupt(id: BlockId, why: &str) -> StoreError {
    StoreError::Corrupt {
        block: id,
        chunk: 0,
        offset: 0,
        why: format!("checksum file: {why}"),
    }
}
