//! End-to-end checksums of block bytes: a CRC32C per [`CHECKSUM_CHUNK`] of an internal block,
//! computed by the blockserver as the block is written and kept beside it, sent with the bytes
//! of a read and checked by the reader (a client, or a blockserver reading a reconstruction
//! source), so that bytes damaged anywhere between the disk and the reader (in a server's
//! memory after it verified them, on the wire, in a proxy) are caught where they are used.

use crate::policy::CHECKSUM_CHUNK;

/// The CRC32C of `bytes` (hardware-accelerated where the CPU has it).
pub fn crc32c(bytes: &[u8]) -> u32 {
    ::crc32c::crc32c(bytes)
}

/// A chunk whose bytes do not match the checksum sent with them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk at block offset {offset} does not match its checksum")]
    Mismatch { offset: u64 },
    #[error("{chunks} chunks of data at block offset {offset} came with {sums} checksums")]
    Count {
        offset: u64,
        chunks: u64,
        sums: usize,
    },
    #[error("data at block offset {0} does not start on a chunk boundary")]
    Unaligned(u64),
    #[error("data at block offset {got} where {want} was due")]
    Gap { want: u64, got: u64 },
}

/// A ranged read as it arrives in checksummed pieces: each piece checked, the pieces
/// contiguous from the chunk that holds the range's first byte, and the range kept.
#[derive(Debug)]
pub struct ChunkedRead {
    offset: u64,
    end: u64,
    /// Where the next piece must start.
    next: u64,
    out: Vec<u8>,
}

impl ChunkedRead {
    /// A read of `[offset, offset+len)`; `capacity` bytes reserved (the caller's bound).
    pub fn new(offset: u64, len: u64, capacity: usize) -> Self {
        Self {
            offset,
            end: offset.saturating_add(len),
            next: offset - offset % CHECKSUM_CHUNK,
            out: Vec::with_capacity(capacity),
        }
    }

    /// Checks one piece (at block offset `at`, with one checksum per chunk) and keeps the
    /// part of it within the range.
    pub fn push(&mut self, at: u64, data: &[u8], sums: &[u32]) -> Result<(), ChunkError> {
        if at != self.next {
            return Err(ChunkError::Gap {
                want: self.next,
                got: at,
            });
        }
        verify_chunks(at, data, sums)?;
        let piece_end = at.saturating_add(data.len() as u64);
        let from = self.offset.max(at).min(piece_end);
        let to = self.end.min(piece_end).max(from);
        let (a, b) = ((from - at) as usize, (to - at) as usize);
        self.out.extend_from_slice(&data[a..b]);
        self.next = piece_end;
        Ok(())
    }

    /// The bytes of the range that arrived.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// Checks `data`, which starts at block offset `offset` (a chunk boundary), against `sums`,
/// one per chunk (the last chunk may be short).
pub fn verify_chunks(offset: u64, data: &[u8], sums: &[u32]) -> Result<(), ChunkError> {
    if !offset.is_multiple_of(CHECKSUM_CHUNK) {
        return Err(ChunkError::Unaligned(offset));
    }
    let chunk = CHECKSUM_CHUNK as usize;
    let chunks = data.len().div_ceil(chunk);
    if chunks != sums.len() {
        return Err(ChunkError::Count {
            offset,
            chunks: chunks as u64,
            sums: sums.len(),
        });
    }
    for (i, (bytes, sum)) in data.chunks(chunk).zip(sums).enumerate() {
        if crc32c(bytes) != *sum {
            return Err(ChunkError::Mismatch {
                offset: offset + (i * chunk) as u64,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_read_keeps_its_range_from_checked_contiguous_pieces() {
        let chunk = CHECKSUM_CHUNK as usize;
        let block: Vec<u8> = (0..chunk * 3 + 10).map(|i| (i * 13) as u8).collect();
        let piece = |from: usize, to: usize| {
            let d = &block[from..to];
            (d.to_vec(), d.chunks(chunk).map(crc32c).collect::<Vec<_>>())
        };
        // [70_000, 70_000 + 80_000): chunks 1 and 2, sent as two pieces.
        let mut r = ChunkedRead::new(70_000, 80_000, 0);
        let (d1, s1) = piece(chunk, 2 * chunk);
        let (d2, s2) = piece(2 * chunk, 3 * chunk);
        r.push(chunk as u64, &d1, &s1).expect("first");
        r.push(2 * chunk as u64, &d2, &s2).expect("second");
        assert_eq!(r.into_bytes(), block[70_000..150_000].to_vec());
        // A piece out of place, or a damaged one, is refused.
        let mut r = ChunkedRead::new(70_000, 80_000, 0);
        assert_eq!(
            r.push(2 * chunk as u64, &d2, &s2),
            Err(ChunkError::Gap {
                want: chunk as u64,
                got: 2 * chunk as u64
            })
        );
        let mut bad = d1.clone();
        bad[3] ^= 8;
        assert!(matches!(
            r.push(chunk as u64, &bad, &s1),
            Err(ChunkError::Mismatch { .. })
        ));
        // The block's short last chunk.
        let mut r = ChunkedRead::new(3 * chunk as u64 + 2, 8, 0);
        let (d3, s3) = piece(3 * chunk, 3 * chunk + 10);
        r.push(3 * chunk as u64, &d3, &s3).expect("last");
        assert_eq!(
            r.into_bytes(),
            block[3 * chunk + 2..3 * chunk + 10].to_vec()
        );
    }

    #[test]
    fn chunks_verify_and_any_flipped_bit_or_wrong_count_is_caught() {
        let chunk = CHECKSUM_CHUNK as usize;
        let data: Vec<u8> = (0..chunk * 2 + 100).map(|i| (i * 7) as u8).collect();
        let sums: Vec<u32> = data.chunks(chunk).map(crc32c).collect();
        assert_eq!(sums.len(), 3);
        assert_eq!(verify_chunks(CHECKSUM_CHUNK * 4, &data, &sums), Ok(()));
        let mut bad = data.clone();
        bad[chunk + 5] ^= 1;
        assert_eq!(
            verify_chunks(0, &bad, &sums),
            Err(ChunkError::Mismatch {
                offset: CHECKSUM_CHUNK
            })
        );
        assert!(matches!(
            verify_chunks(0, &data, &sums[..2]),
            Err(ChunkError::Count { .. })
        ));
        assert_eq!(
            verify_chunks(3, &data, &sums),
            Err(ChunkError::Unaligned(3))
        );
        assert_eq!(verify_chunks(0, &[], &[]), Ok(()));
    }
}
