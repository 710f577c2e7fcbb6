//! A file's checksum that is the same whatever its layout (HDFS's COMPOSITE_CRC, HDFS-13056):
//! the CRC32C of the file's bytes in order, put together from the CRC32C of every
//! [`CHECKSUM_CHUNK`] each blockserver stored when the block was written, without reading the
//! bytes. A replicated and an erasure-coded copy of the same content, or copies with other
//! block sizes, on two clusters, have the same checksum, so a copy can be verified by asking
//! both sides for their checksums (issue 19's side-by-side migration), not by reading both.
//!
//! CRCs combine (`crc(a ++ b)` from `crc(a)`, `crc(b)` and `len(b)`), so the file's CRC is the
//! chunks' CRCs combined in file order. That needs every chunk to lie within one piece of the
//! file: always for a replicated block, and for a striped group when cells are a whole number
//! of chunks (a cell then starts on a chunk boundary and ends on one or at its block's end).
//! Where that does not hold (or a block's checksums are missing), [`group_crc`] says so and
//! the caller reads the group's bytes instead (a degraded read when blocks are missing).

use crate::layout::Layout;
use crate::policy::CHECKSUM_CHUNK;

/// The CRC32C of a run of bytes, with its length: what two runs need to combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Crc {
    pub crc: u32,
    pub len: u64,
}

impl Crc {
    /// The CRC of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            crc: crate::checksum::crc32c(bytes),
            len: bytes.len() as u64,
        }
    }

    /// The CRC of this run followed by `next`.
    pub fn then(self, next: Crc) -> Crc {
        let len2 = usize::try_from(next.len).unwrap_or(usize::MAX);
        Crc {
            crc: ::crc32c::crc32c_combine(self.crc, next.crc, len2),
            len: self.len.saturating_add(next.len),
        }
    }
}

/// An internal block's stored chunk checksums: one CRC32C per [`CHECKSUM_CHUNK`] from the
/// block's start, the last chunk ending at the block's end.
#[derive(Clone, Copy, Debug)]
pub struct BlockSums<'a> {
    pub len: u64,
    pub sums: &'a [u32],
}

impl BlockSums<'_> {
    /// Whether the sums are as many as the block's chunks.
    fn consistent(&self) -> bool {
        self.sums.len() as u64 == self.len.div_ceil(CHECKSUM_CHUNK)
    }

    /// The CRC of `[off, off+len)`, which must start on a chunk boundary and end on one or at
    /// the block's end.
    fn range(&self, off: u64, len: u64) -> Option<Crc> {
        let end = off.checked_add(len).filter(|e| *e <= self.len)?;
        if !off.is_multiple_of(CHECKSUM_CHUNK)
            || !(end.is_multiple_of(CHECKSUM_CHUNK) || end == self.len)
        {
            return None;
        }
        let mut crc = Crc::default();
        let mut at = off;
        while at < end {
            let i = usize::try_from(at / CHECKSUM_CHUNK).ok()?;
            let n = CHECKSUM_CHUNK.min(end - at);
            crc = crc.then(Crc {
                crc: *self.sums.get(i)?,
                len: n,
            });
            at += n;
        }
        Some(crc)
    }
}

/// The CRC of a block group's `group_len` data bytes in file order, from its data blocks'
/// stored checksums (`block(i)`: internal block i's, none when it cannot be had).
/// `layout`: the striping of an erasure-coded group; none for a replicated one (its one
/// block holds the bytes in order). `None` when the checksums cannot give it: a block's are
/// missing or do not match the length the layout gives it, or cells are not whole chunks.
pub fn group_crc<'a>(
    layout: Option<&Layout>,
    group_len: u64,
    block: impl Fn(usize) -> Option<BlockSums<'a>>,
) -> Option<Crc> {
    let Some(layout) = layout else {
        let b = block(0).filter(|b| b.len == group_len && b.consistent())?;
        return b.range(0, group_len);
    };
    if !layout.cell().is_multiple_of(CHECKSUM_CHUNK) {
        return None;
    }
    let mut blocks: Vec<Option<BlockSums<'a>>> = Vec::with_capacity(layout.data_cells());
    for i in 0..layout.data_cells() {
        let want = layout.block_len(group_len, i);
        blocks.push(if want == 0 {
            None
        } else {
            Some(block(i).filter(|b| b.len == want && b.consistent())?)
        });
    }
    let mut crc = Crc::default();
    for piece in layout.pieces(0, group_len, group_len).ok()? {
        let b = blocks.get(piece.block).copied().flatten()?;
        crc = crc.then(b.range(piece.block_offset, piece.len)?);
    }
    Some(crc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a blockserver stores for `data`: a CRC per chunk.
    fn sums_of(data: &[u8]) -> Vec<u32> {
        data.chunks(CHECKSUM_CHUNK as usize)
            .map(crate::checksum::crc32c)
            .collect()
    }

    /// The internal data blocks of a striped group holding `data` (cell by cell).
    fn stripe(layout: &Layout, data: &[u8]) -> Vec<Vec<u8>> {
        let mut blocks = vec![Vec::new(); layout.data_cells()];
        let pieces = layout
            .pieces(0, data.len() as u64, data.len() as u64)
            .expect("pieces");
        for p in pieces {
            let at = p.buf_offset as usize;
            blocks[p.block].extend_from_slice(&data[at..at + p.len as usize]);
        }
        blocks
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u64).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    #[test]
    fn combining_is_the_crc_of_the_whole() {
        let data = bytes(300_000, 3);
        let (a, b) = data.split_at(123_457);
        assert_eq!(Crc::of(a).then(Crc::of(b)), Crc::of(&data));
        assert_eq!(Crc::default().then(Crc::of(&data)), Crc::of(&data));
    }

    proptest! {
        /// The same bytes give the same checksum replicated and striped (any k, cells of 1
        /// to 4 chunks, any length), and it is the CRC32C of the bytes themselves.
        #[test]
        fn the_checksum_does_not_depend_on_the_layout(
            len in 0usize..900_000,
            k in 1usize..5,
            cell_chunks in 1u64..4,
            seed: u8,
        ) {
            let data = bytes(len, seed);
            let whole = Crc::of(&data);
            let sums = sums_of(&data);
            let replicated = group_crc(None, len as u64, |_| {
                Some(BlockSums { len: len as u64, sums: &sums })
            });
            prop_assert_eq!(replicated, Some(whole));

            let layout = Layout::new(k, 2, cell_chunks * CHECKSUM_CHUNK).expect("layout");
            let blocks = stripe(&layout, &data);
            let block_sums: Vec<Vec<u32>> = blocks.iter().map(|b| sums_of(b)).collect();
            let striped = group_crc(Some(&layout), len as u64, |i| {
                Some(BlockSums { len: blocks[i].len() as u64, sums: &block_sums[i] })
            });
            prop_assert_eq!(striped, Some(whole));
        }
    }

    #[test]
    fn what_the_sums_cannot_give_is_said() {
        let data = bytes(200_000, 1);
        let sums = sums_of(&data);
        // A block of another length than the group's, or too few sums.
        assert_eq!(
            group_crc(None, 199_999, |_| Some(BlockSums {
                len: 200_000,
                sums: &sums
            })),
            None
        );
        assert_eq!(
            group_crc(None, 200_000, |_| Some(BlockSums {
                len: 200_000,
                sums: &sums[1..]
            })),
            None
        );
        // A missing data block of a striped group.
        let layout = Layout::new(2, 1, CHECKSUM_CHUNK).expect("layout");
        let blocks = stripe(&layout, &data);
        let s0 = sums_of(&blocks[0]);
        assert_eq!(
            group_crc(Some(&layout), 200_000, |i| (i == 0).then_some(BlockSums {
                len: blocks[0].len() as u64,
                sums: &s0
            })),
            None
        );
        // Cells that are not whole chunks.
        let odd = Layout::new(2, 1, CHECKSUM_CHUNK + 512).expect("layout");
        assert_eq!(group_crc(Some(&odd), 0, |_| None), None, "not even tried");
    }
}
