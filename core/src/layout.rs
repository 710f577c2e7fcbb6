//! The striped layout of an erasure-coded block group (DESIGN §6), as HDFS lays it out: the
//! group's data is cut into cells of `cell` bytes; stripe `s` holds data cells `s·k ..
//! s·k+k-1` in internal blocks `0..k` and its parity cells in blocks `k..k+m`; so internal
//! block `i` is cell `i` of every stripe, back to back. Only the last stripe may be short:
//! its cells fill from block 0, and its parity cells are as long as its longest data cell.
//!
//! Pure arithmetic (no I/O), shared by the writer (where each byte goes), the reader (which
//! cells a range needs, and from which blocks), reconstruction (how long each internal block
//! of a group is) and the metaserver (lease recovery, redundancy). A layout exists only within
//! the policy caps (k + m and the cell), so no product below can overflow, whatever group
//! length a peer names.

use crate::policy::{MAX_CELL_KIB, MAX_GROUP_WIDTH};

/// Why a layout cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripingError {
    #[error("a striped layout needs k > 0 data cells, m > 0 parity cells and a cell > 0 bytes")]
    Empty,
    #[error(
        "a striped layout has at most {MAX_GROUP_WIDTH} cells per stripe and {MAX_CELL_KIB} KiB cells"
    )]
    TooLarge,
    #[error("range {offset}+{len} is outside the group's {group_len} bytes")]
    OutOfRange {
        offset: u64,
        len: u64,
        group_len: u64,
    },
}

/// The layout of one policy (e.g. RS-6-3 with 1 MiB cells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    k: u64,
    m: u64,
    cell: u64,
}

/// Where one byte of the group's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellPos {
    pub stripe: u64,
    /// The internal block (0..k): the cell's index in its stripe.
    pub block: usize,
    /// Offset in the internal block.
    pub block_offset: u64,
}

/// A piece of a read: `len` bytes of internal block `block` at `block_offset`, which go to
/// `buf_offset` in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub block: usize,
    pub block_offset: u64,
    pub len: u64,
    pub buf_offset: u64,
    pub stripe: u64,
}

impl Layout {
    pub fn new(k: usize, m: usize, cell: u64) -> Result<Self, StripingError> {
        if k == 0 || m == 0 || cell == 0 {
            return Err(StripingError::Empty);
        }
        if k.saturating_add(m) > MAX_GROUP_WIDTH || cell > u64::from(MAX_CELL_KIB) * 1024 {
            return Err(StripingError::TooLarge);
        }
        Ok(Self {
            k: k as u64,
            m: m as u64,
            cell,
        })
    }

    /// Data bytes in one full stripe.
    pub fn stripe_data(&self) -> u64 {
        self.k * self.cell
    }

    /// Data cells per stripe (k).
    pub fn data_cells(&self) -> usize {
        self.k as usize
    }

    /// Bytes per cell.
    pub fn cell(&self) -> u64 {
        self.cell
    }

    /// Internal blocks in a group (k + m).
    pub fn blocks(&self) -> usize {
        (self.k + self.m) as usize
    }

    /// Stripes holding `group_len` bytes of data.
    pub fn stripes(&self, group_len: u64) -> u64 {
        group_len.div_ceil(self.stripe_data())
    }

    /// The length of internal block `block` (data 0..k, parity k..k+m) of a group holding
    /// `group_len` bytes: what every one of its servers must have, and what a rebuilt block
    /// must be.
    pub fn block_len(&self, group_len: u64, block: usize) -> u64 {
        let full = group_len / self.stripe_data();
        let rest = group_len % self.stripe_data();
        let in_last = if (block as u64) < self.k {
            rest.saturating_sub(block as u64 * self.cell).min(self.cell)
        } else {
            // A parity cell is as long as the longest data cell of its stripe (cell 0's).
            rest.min(self.cell)
        };
        full * self.cell + in_last
    }

    /// Where the data byte at `offset` of the group lives.
    pub fn locate(&self, offset: u64) -> CellPos {
        let stripe = offset / self.stripe_data();
        let in_stripe = offset % self.stripe_data();
        CellPos {
            stripe,
            block: (in_stripe / self.cell) as usize,
            block_offset: stripe * self.cell + in_stripe % self.cell,
        }
    }

    /// The pieces of internal blocks a read of `len` bytes at `offset` needs, in order.
    pub fn pieces(
        &self,
        offset: u64,
        len: u64,
        group_len: u64,
    ) -> Result<Vec<Piece>, StripingError> {
        let end = offset.checked_add(len).filter(|e| *e <= group_len).ok_or(
            StripingError::OutOfRange {
                offset,
                len,
                group_len,
            },
        )?;
        let mut out = Vec::new();
        let mut at = offset;
        while at < end {
            let pos = self.locate(at);
            let left_in_cell = self.cell - at % self.cell;
            let n = left_in_cell.min(end - at);
            out.push(Piece {
                block: pos.block,
                block_offset: pos.block_offset,
                len: n,
                buf_offset: at - offset,
                stripe: pos.stripe,
            });
            at += n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lays `data` out into internal data blocks the slow, obvious way: cell by cell.
    fn split(layout: &Layout, data: &[u8]) -> Vec<Vec<u8>> {
        let k = layout.k as usize;
        let cell = layout.cell as usize;
        let mut blocks = vec![Vec::new(); k];
        for (i, c) in data.chunks(cell).enumerate() {
            blocks[i % k].extend_from_slice(c);
        }
        blocks
    }

    #[test]
    fn a_short_last_stripe_fills_from_block_zero() {
        let l = Layout::new(6, 3, 1024).expect("layout");
        // 2.5 cells of data: blocks 0, 1 full cells, block 2 half, blocks 3-5 empty,
        // parity one full cell each.
        let len = 2 * 1024 + 512;
        let lens: Vec<u64> = (0..9).map(|b| l.block_len(len, b)).collect();
        assert_eq!(lens, vec![1024, 1024, 512, 0, 0, 0, 1024, 1024, 1024]);
        assert_eq!(l.stripes(len), 1);
        assert_eq!(l.stripes(6 * 1024), 1);
        assert_eq!(l.stripes(6 * 1024 + 1), 2);
        let pos = l.locate(6 * 1024 + 1024 + 5);
        assert_eq!(
            pos,
            CellPos {
                stripe: 1,
                block: 1,
                block_offset: 1024 + 5
            }
        );
        assert!(Layout::new(0, 3, 1024).is_err());
        assert!(Layout::new(30, 3, 1024).is_err());
        assert!(Layout::new(6, 3, 1 << 40).is_err());
        assert!(l.pieces(10, 5, 12).is_err());
        assert!(l.pieces(u64::MAX, 2, 12).is_err());
    }

    proptest! {
        /// Any layout within the caps, any group length (up to u64::MAX): no panic, no
        /// overflow, and the data blocks together hold exactly the group.
        #[test]
        fn block_lengths_sum_to_the_group_for_any_length(
            k in 1usize..=31, m in 1usize..=31,
            cell in prop_oneof![1u64..4096, Just(u64::from(MAX_CELL_KIB) * 1024)],
            len in prop_oneof![any::<u64>(), 0u64..1_000_000, Just(u64::MAX)],
        ) {
            let Ok(layout) = Layout::new(k, m, cell) else {
                prop_assert!(k + m > MAX_GROUP_WIDTH);
                return Ok(());
            };
            let data: u128 = (0..k).map(|b| u128::from(layout.block_len(len, b))).sum();
            prop_assert_eq!(data, u128::from(len));
            for p in k..k + m {
                prop_assert_eq!(layout.block_len(len, p), layout.block_len(len, 0));
            }
            let pos = layout.locate(len);
            prop_assert!(pos.block < k);
            let from = len.saturating_sub(3 * cell);
            let pieces = layout.pieces(from, len - from, len).expect("in range");
            prop_assert_eq!(pieces.iter().map(|p| p.len).sum::<u64>(), len - from);
            prop_assert!(layout.pieces(len, 1, len).is_err());
        }

        #[test]
        fn pieces_read_back_exactly_the_range(
            k in 1usize..8, m in 1usize..4, cell in 1u64..64,
            len in 0usize..2000, a in 0usize..2000, b in 0usize..2000,
        ) {
            let layout = Layout::new(k, m, cell).expect("layout");
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let blocks = split(&layout, &data);
            for (i, blk) in blocks.iter().enumerate() {
                prop_assert_eq!(blk.len() as u64, layout.block_len(len as u64, i));
            }
            for p in k..k + m {
                prop_assert_eq!(layout.block_len(len as u64, p), layout.block_len(len as u64, 0));
            }
            let (from, to) = (a.min(b).min(len), a.max(b).min(len));
            let pieces = layout
                .pieces(from as u64, (to - from) as u64, len as u64)
                .expect("in range");
            let mut got = vec![0u8; to - from];
            for p in &pieces {
                let src = &blocks[p.block][p.block_offset as usize..(p.block_offset + p.len) as usize];
                got[p.buf_offset as usize..(p.buf_offset + p.len) as usize].copy_from_slice(src);
            }
            prop_assert_eq!(&got[..], &data[from..to]);
            prop_assert_eq!(pieces.iter().map(|p| p.len).sum::<u64>(), (to - from) as u64);
        }
    }
}
