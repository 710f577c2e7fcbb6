//! A block's checksum file (`blockserver/src/store/checksum.rs`): a header (`RFCK`, the
//! version, the chunk size, from version 2 the block's generation) and one CRC32C per 64 KiB
//! chunk of the data file, which every read verifies. The file comes from disk, where it may
//! be damaged.
//!
//! Properties: parsing any bytes, for any block length, never panics; what it accepts is
//! exactly one checksum per chunk of that length, in the one encoding the writer produces
//! (version 1 at the first generation, version 2 at any other: a file in that encoding
//! re-encodes to the same bytes, and any accepted file parses back from its re-encoding). The generation read
//! from the header alone is the one the whole file gives. And for data of up to three chunks
//! (the last short),
//! the checksums the writer computes parse back for that length only, verify every chunk,
//! refuse a chunk index past the end, and catch a changed byte in exactly its chunk.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use raftfs_blockserver::store::checksum::{CHUNK, ChecksumFile};
use raftfs_blockserver::store::{BlockId, Generation};
use raftfs_fuzz::Num;

#[derive(Debug, Arbitrary)]
struct Input {
    file: Vec<u8>,
    length: Num,
    data_len: u32,
    generation: u64,
    seed: Vec<u8>,
    flip: u32,
    flip_to: u8,
}

const ID: BlockId = BlockId {
    pool: 0,
    group: 1,
    index: 0,
};

fuzz_target!(|input: Input| {
    // Any bytes, any length.
    if let Ok(sums) = ChecksumFile::parse(&input.file, ID, input.length.0) {
        let chunks = input.length.0.div_ceil(CHUNK as u64);
        let header = ChecksumFile::parse_generation(&input.file, ID).expect("header parses");
        assert_eq!(header, sums.generation());
        let header = if input.file[4] == 1 { 9 } else { 17 };
        assert_eq!(input.file.len() as u64, header + 4 * chunks);
        if input.file[4] == 1 {
            assert_eq!(sums.generation(), Generation::FIRST);
        }
        // The writer's one encoding of these checksums: version 1 at the first generation,
        // version 2 otherwise; it parses back to the same.
        if (input.file[4] == 1) == (sums.generation() == Generation::FIRST) {
            assert_eq!(sums.encode(), input.file);
        }
        let again = ChecksumFile::parse(&sums.encode(), ID, input.length.0);
        assert_eq!(again.as_ref().ok(), Some(&sums));
    }

    // The writer's checksums of real data.
    let len = input.data_len as usize % (3 * CHUNK + 1);
    let mut data: Vec<u8> = input.seed.iter().copied().take(len).collect();
    data.resize(data.len().max(len.min(1)), 0);
    while data.len() < len {
        let n = data.len().min(len - data.len());
        data.extend_from_within(..n);
    }
    let mut sums = ChecksumFile::new(Generation(input.generation));
    for chunk in data.chunks(CHUNK) {
        sums.push(chunk);
    }
    let bytes = sums.encode();
    let parsed = ChecksumFile::parse(&bytes, ID, len as u64).expect("the writer's file parses");
    assert_eq!(parsed.encode(), bytes);
    assert_eq!(parsed.generation(), Generation(input.generation));
    let chunks = len.div_ceil(CHUNK);
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        assert!(parsed.verify(i as u64, chunk), "chunk {i}");
    }
    assert!(!parsed.verify(chunks as u64, &[]));
    assert!(!parsed.verify(u64::MAX, &[]));
    for other in [
        len as u64 + CHUNK as u64,
        (len as u64).saturating_sub(CHUNK as u64),
    ] {
        if other.div_ceil(CHUNK as u64) != chunks as u64 {
            assert!(ChecksumFile::parse(&bytes, ID, other).is_err());
        }
    }
    if len > 0 {
        let at = input.flip as usize % len;
        let mut changed = data.clone();
        changed[at] = if input.flip_to == changed[at] {
            !input.flip_to
        } else {
            input.flip_to
        };
        for (i, chunk) in changed.chunks(CHUNK).enumerate() {
            assert_eq!(
                parsed.verify(i as u64, chunk),
                i != at / CHUNK,
                "chunk {i}, byte {at}"
            );
        }
        // A damaged header is refused.
        let mut bad = bytes.clone();
        let b = input.flip as usize % 9;
        bad[b] ^= input.flip_to | 1;
        assert!(ChecksumFile::parse(&bad, ID, len as u64).is_err());
    }
});
