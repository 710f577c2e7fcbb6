//! Layout arithmetic (`core/src/layout.rs`): where every byte of an erasure-coded group
//! lives, which the writer, the reader, reconstruction and lease recovery all rely on.
//!
//! Property: `Layout::new` accepts exactly the layouts within the caps (k, m > 0, k + m <=
//! 32, 0 < cell <= 4 MiB), and then, for any group length up to `u64::MAX`, nothing panics
//! or overflows (overflow checks are on in fuzz builds) and what the module promises holds:
//! the data blocks' lengths sum to the group length, every parity block is as long as block
//! 0, no block is longer than block 0; a byte inside the group is located in a data block,
//! below that block's length; and the pieces of any in-range read (of a bounded number of
//! cells) cover the range exactly, in order, each inside one cell of one block and below
//! that block's length, while an out-of-range read is refused.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use raftfs_core::layout::{Layout, StripingError};
use raftfs_core::policy::{MAX_CELL_KIB, MAX_GROUP_WIDTH};
use raftfs_fuzz::Num;

/// Reads of more pieces than this are not planned here (a reader's buffer bounds them).
const MAX_PIECES: u64 = 4096;

#[derive(Debug, Arbitrary)]
struct Input {
    k: u8,
    m: u8,
    cell: Num,
    small_cell: bool,
    group_len: Num,
    offset: Num,
    len: Num,
}

fuzz_target!(|input: Input| {
    let (k, m) = (usize::from(input.k), usize::from(input.m));
    let cell = if input.small_cell {
        input.cell.0 % 70
    } else {
        input.cell.0
    };
    let layout = match Layout::new(k, m, cell) {
        Ok(l) => l,
        Err(e) => {
            let within = k > 0 && m > 0 && cell > 0;
            let capped = k + m <= MAX_GROUP_WIDTH && cell <= u64::from(MAX_CELL_KIB) * 1024;
            match e {
                StripingError::Empty => assert!(!within),
                StripingError::TooLarge => assert!(within && !capped),
                StripingError::OutOfRange { .. } => panic!("new returned {e:?}"),
            }
            return;
        }
    };
    assert!(k > 0 && m > 0 && cell > 0 && k + m <= MAX_GROUP_WIDTH);
    let group_len = input.group_len.0;
    let lens: Vec<u64> = (0..k + m).map(|b| layout.block_len(group_len, b)).collect();
    let data: u128 = lens[..k].iter().map(|l| u128::from(*l)).sum();
    assert_eq!(data, u128::from(group_len), "data blocks {lens:?}");
    for (b, l) in lens.iter().enumerate() {
        assert!(*l <= lens[0], "block {b} longer than block 0: {lens:?}");
        if b >= k {
            assert_eq!(*l, lens[0], "parity block {b}: {lens:?}");
        }
    }
    assert!(u128::from(lens[0]) <= u128::from(layout.stripes(group_len)) * u128::from(cell));
    if group_len > 0 {
        let at = input.offset.0 % group_len;
        let pos = layout.locate(at);
        assert!(pos.block < k);
        assert!(
            pos.block_offset < lens[pos.block],
            "{pos:?} of {lens:?} at {at}"
        );
        assert_eq!(pos.stripe, at / layout.stripe_data());
    }
    let (offset, len) = (input.offset.0, input.len.0);
    let in_range = offset.checked_add(len).is_some_and(|end| end <= group_len);
    if in_range && len / cell > MAX_PIECES {
        return;
    }
    match layout.pieces(offset, len, group_len) {
        Err(e) => assert!(!in_range, "{e:?}"),
        Ok(pieces) => {
            assert!(in_range);
            let mut next = 0u64;
            for p in &pieces {
                assert!(p.len > 0 && p.len <= cell, "{p:?}");
                assert_eq!(p.buf_offset, next, "{p:?}");
                assert!(p.block < k, "{p:?}");
                assert!(
                    p.block_offset % cell + p.len <= cell,
                    "{p:?} crosses a cell"
                );
                assert!(p.block_offset + p.len <= lens[p.block], "{p:?} of {lens:?}");
                assert_eq!(
                    layout.locate(offset + p.buf_offset).block_offset,
                    p.block_offset
                );
                next += p.len;
            }
            assert_eq!(next, len);
        }
    }
});
