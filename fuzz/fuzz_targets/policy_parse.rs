//! Storage-policy parsing (`core/src/policy.rs`): the one parser every component applies to a
//! policy name from a user or a peer (a create, a reconstruction task, a partial cell).
//!
//! Property: `StoragePolicy::from_str` never panics, and what it accepts is within the caps
//! that bound every allocation sized from a policy (copies <= 32, k + m <= 32, XOR with one
//! parity cell, cells of 1 KiB..=4 MiB); its name prints back and parses to itself; an
//! erasure-coded policy has a layout of its width, and only the listed EC policies are
//! enabled. `validate_block_size` accepts only positive multiples of the cell and the
//! checksum chunk up to 2 GiB, and the capacity of a group never overflows.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use raftfs_core::policy::{
    CHECKSUM_CHUNK, EC_POLICIES, EcCodec, MAX_BLOCK_SIZE, MAX_CELL_KIB, MAX_GROUP_WIDTH,
    MAX_REPLICATION, StoragePolicy,
};
use raftfs_fuzz::{Num, PolicyName};

#[derive(Debug, Arbitrary)]
enum Input {
    /// Any text.
    Raw(String),
    /// A name shaped like a policy.
    Shaped(PolicyName, Num, Num),
}

fuzz_target!(|input: Input| {
    let (name, block_size, group_len) = match input {
        Input::Raw(s) => (s, 1 << 20, 0),
        Input::Shaped(p, b, g) => (p.0, b.0, g.0),
    };
    let Ok(policy) = name.parse::<StoragePolicy>() else {
        return;
    };
    let printed = policy.to_string();
    assert_eq!(printed.parse::<StoragePolicy>().as_ref(), Ok(&policy));
    match &policy {
        StoragePolicy::Replicated(n) => {
            assert!((1..=MAX_REPLICATION).contains(n));
            assert!(policy.layout().is_none() && policy.cell_bytes().is_none());
            assert_eq!(policy.data_blocks(), 1);
            assert!(policy.is_enabled());
        }
        StoragePolicy::ErasureCoded {
            codec,
            data,
            parity,
            cell_kib,
        } => {
            assert!(*data > 0 && *parity > 0);
            assert!(usize::from(*data) + usize::from(*parity) <= MAX_GROUP_WIDTH);
            assert!(*codec != EcCodec::Xor || *parity == 1);
            assert!((1..=MAX_CELL_KIB).contains(cell_kib));
            let layout = policy.layout().expect("an accepted EC policy has a layout");
            assert_eq!(layout.blocks(), policy.width());
            assert_eq!(layout.data_cells(), usize::from(*data));
            assert_eq!(Some(layout.cell()), policy.cell_bytes());
            assert_eq!(policy.is_enabled(), EC_POLICIES.contains(&printed.as_str()));
        }
    }
    assert!(policy.width() <= MAX_GROUP_WIDTH);
    if policy.validate_block_size(block_size).is_ok() {
        assert!(block_size > 0 && block_size <= MAX_BLOCK_SIZE);
        assert!(block_size.is_multiple_of(CHECKSUM_CHUNK));
        assert!(block_size.is_multiple_of(policy.cell_bytes().unwrap_or(1)));
    }
    let capacity = policy.group_capacity(block_size);
    assert!(capacity >= block_size.min(u64::MAX / 32));
    for i in 0..policy.width() {
        let _ = policy.block_len(group_len, i);
    }
});
