//! The store on a real directory: round trips at chunk boundaries, reads of any range,
//! corruption found and located, crash leftovers removed, bad requests refused.

use super::*;

const G1: Generation = Generation::FIRST;

fn id(group: u64, index: u16) -> BlockId {
    BlockId {
        pool: 0,
        group,
        index,
    }
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn put(store: &Store, b: BlockId, data: &[u8], pieces: usize) -> u64 {
    let mut w = store.create(b, G1).expect("create");
    for piece in data.chunks(data.len().div_ceil(pieces.max(1)).max(1)) {
        w.write(piece).expect("write");
    }
    w.finalize().expect("finalize")
}

#[test]
fn blocks_round_trip_at_every_chunk_boundary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    for (n, len) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]
        .into_iter()
        .enumerate()
    {
        let b = id(7, n as u16);
        let data = bytes(len, n as u8);
        assert_eq!(put(&store, b, &data, 3), len as u64);
        assert_eq!(store.length(b).expect("length"), len as u64);
        assert_eq!(store.read(b, 0, len as u64).expect("read all"), data);
        // Ranges inside one chunk, across chunks, at the end.
        for (off, l) in [(0, 1), (CHUNK - 3, 7), (len.saturating_sub(5), 5)] {
            if off + l <= len {
                let got = store.read(b, off as u64, l as u64).expect("read range");
                assert_eq!(got, data[off..off + l], "len {len} off {off} l {l}");
            }
        }
    }
    let listed = store.list().expect("list");
    assert_eq!(listed.len(), 6);
    assert_eq!(
        listed[3],
        Listed {
            id: id(7, 3),
            length: CHUNK as u64,
            generation: G1
        }
    );
}

#[test]
fn a_flipped_byte_is_found_in_its_chunk_and_other_chunks_still_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let b = id(1, 0);
    let data = bytes(3 * CHUNK, 9);
    put(&store, b, &data, 1);
    let path = dir.path().join("finalized").join("blk_0000000000000001_0");
    let mut raw = fs::read(&path).expect("raw");
    raw[CHUNK + 100] ^= 0x40;
    fs::write(&path, raw).expect("corrupt it");
    match store.read(b, 0, data.len() as u64) {
        Err(StoreError::Corrupt { chunk, offset, .. }) => {
            assert_eq!((chunk, offset), (1, CHUNK as u64));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Chunks 0 and 2 are intact and still readable.
    assert_eq!(store.read(b, 0, 10).expect("chunk 0"), data[..10]);
    let tail = store.read(b, 2 * CHUNK as u64, 10).expect("chunk 2");
    assert_eq!(tail, data[2 * CHUNK..2 * CHUNK + 10]);
}

#[test]
fn damaged_or_missing_checksums_and_truncated_data_are_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let fin = dir.path().join("finalized");
    for (n, damage) in ["truncate-data", "truncate-crc", "bad-magic", "no-crc"]
        .into_iter()
        .enumerate()
    {
        let b = id(2, n as u16);
        put(&store, b, &bytes(2 * CHUNK, 1), 2);
        let data = fin.join(format!("blk_0000000000000002_{n}"));
        let crc = fin.join(format!("blk_0000000000000002_{n}.crc"));
        match damage {
            "truncate-data" => {
                let raw = fs::read(&data).expect("raw");
                fs::write(&data, &raw[..CHUNK + 5]).expect("truncate");
            }
            "truncate-crc" => {
                let raw = fs::read(&crc).expect("raw");
                fs::write(&crc, &raw[..raw.len() - 4]).expect("truncate");
            }
            "bad-magic" => {
                let mut raw = fs::read(&crc).expect("raw");
                raw[0] = b'X';
                fs::write(&crc, raw).expect("write");
            }
            _ => fs::remove_file(&crc).expect("remove"),
        }
        // (A truncated data file still has an intact first chunk: read what is there.)
        let len = store.length(b).expect("length");
        assert!(
            matches!(store.read(b, 0, len), Err(StoreError::Corrupt { .. })),
            "{damage} not found"
        );
    }
}

#[test]
fn unfinalized_blocks_are_invisible_and_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let b = id(3, 0);
    let mut w = store.create(b, G1).expect("create");
    w.write(&bytes(1000, 2)).expect("write");
    // A crash now: the writer vanishes without finalize and without cleaning up.
    std::mem::forget(w);
    assert!(matches!(store.length(b), Err(StoreError::NotFound(_))));
    assert!(store.list().expect("list").is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
        1,
        "the crash left its temporary file"
    );
    let reopened = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
        0,
        "leftovers removed"
    );
    // And the block can be written afresh.
    put(&reopened, b, &bytes(10, 3), 1);
    assert_eq!(reopened.read(b, 0, 10).expect("read"), bytes(10, 3));
}

#[test]
fn bad_requests_are_typed_errors_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let b = id(4, 2);
    put(&store, b, &bytes(100, 4), 1);
    assert!(matches!(
        store.create(b, G1),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.read(b, 90, 11),
        Err(StoreError::OutOfRange { length: 100, .. })
    ));
    assert!(matches!(
        store.read(b, u64::MAX, 2),
        Err(StoreError::OutOfRange { .. })
    ));
    assert!(matches!(
        store.read(id(4, 3), 0, 1),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete(id(9, 9)),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.read(b, 0, 100).expect("intact"), bytes(100, 4));
    store.delete(b).expect("delete");
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn a_writer_dropped_without_finalize_removes_its_bytes_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let b = id(5, 1);
    // Two writers of one block do not share a temporary file.
    let mut w1 = store.create(b, G1).expect("create");
    let mut w2 = store.create(b, G1).expect("create again");
    w1.write(&bytes(3 * CHUNK, 1)).expect("write");
    w2.write(&bytes(10, 2)).expect("write");
    drop(w1);
    assert_eq!(
        fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
        1
    );
    assert_eq!(w2.finalize().expect("finalize"), 10);
    assert_eq!(store.read(b, 0, 10).expect("read"), bytes(10, 2));
    assert_eq!(
        fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
        0
    );
}

/// Two streams of one block finalizing at once, many times over behind a barrier: one wins
/// whole, the other is told the block exists, and what is stored always reads back complete
/// and verified: never the data of one beside the checksums of the other, never the shorter
/// over the longer. (On tmpfs when there is one: fsync there costs nothing, so the races are
/// many in little time.)
#[test]
fn two_streams_finalizing_one_block_never_leave_a_torn_or_short_block() {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tempdir")
    } else {
        tempfile::tempdir().expect("tempdir")
    };
    let store = std::sync::Arc::new(Store::open(dir.path()).expect("open"));
    let short = bytes(CHUNK + 100, 1);
    let long = bytes(3 * CHUNK + 7, 2);
    let rounds = if shm.is_dir() { 10_000 } else { 300 };
    let b = id(9, 0);
    for round in 0..rounds {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = [short.clone(), long.clone()]
            .into_iter()
            .map(|data| {
                let (store, barrier) = (store.clone(), barrier.clone());
                let mut w = store.create(b, G1).expect("create while none is finalized");
                w.write(&data).expect("write");
                std::thread::spawn(move || {
                    barrier.wait();
                    (data.len(), w.finalize())
                })
            })
            .collect();
        let outcomes: Vec<(usize, Result<u64, StoreError>)> = racers
            .into_iter()
            .map(|t| t.join().expect("racer"))
            .collect();
        let won: Vec<usize> = outcomes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(len, _)| *len)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|(_, r)| matches!(r, Err(StoreError::AlreadyExists(_)))),
            "round {round}: {outcomes:?}"
        );
        let stored = store
            .read(b, 0, won[0] as u64)
            .expect("the winner reads back whole");
        assert_eq!(
            stored,
            if won[0] == short.len() { &short } else { &long }[..]
        );
        assert_eq!(store.length(b).expect("length"), won[0] as u64);
        store.delete(b).expect("delete");
    }
    // Nothing of the losers is left behind.
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );
}

/// Generation stamps: a block keeps the generation it was written at; lease recovery
/// restamps it forward only, atomically, without touching its bytes; a checksum file of
/// version 1 (before stamps) is a block of the first generation.
#[test]
fn blocks_keep_their_generation_and_are_restamped_forward_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let b = id(9, 2);
    let data = bytes(CHUNK + 100, 4);
    let mut w = store.create(b, Generation(2)).expect("create");
    w.write(&data).expect("write");
    assert_eq!(w.generation(), Generation(2));
    w.finalize().expect("finalize");
    assert_eq!(store.generation(b).expect("generation"), Generation(2));
    assert_eq!(store.list().expect("list")[0].generation, Generation(2));

    assert_eq!(
        store.restamp(b, Generation(2)).expect("same"),
        data.len() as u64
    );
    assert!(matches!(
        store.restamp(b, G1),
        Err(StoreError::NewerGeneration {
            stamped: Generation(2),
            asked: G1,
            ..
        })
    ));
    assert_eq!(
        store.restamp(b, Generation(5)).expect("forward"),
        data.len() as u64
    );
    assert_eq!(store.generation(b).expect("generation"), Generation(5));
    let chunks = store.read_chunks(b, 0, data.len() as u64).expect("read");
    assert_eq!(chunks.generation, Generation(5));
    assert_eq!(chunks.data, data, "restamping leaves the bytes alone");
    assert_eq!(
        fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
        0,
        "no temporary file left"
    );
    assert!(matches!(
        store.restamp(id(9, 3), Generation(5)),
        Err(StoreError::NotFound(_))
    ));

    // A version 1 checksum file: the header without a generation.
    let crc = dir.path().join("finalized").join(format!("{b}.crc"));
    let v2 = fs::read(&crc).expect("crc");
    let mut v1 = v2[..9].to_vec();
    v1[4] = 1;
    v1.extend_from_slice(&v2[checksum::HEADER..]);
    fs::write(&crc, &v1).expect("write v1");
    assert_eq!(store.generation(b).expect("generation"), G1);
    assert_eq!(
        store
            .read(b, 0, data.len() as u64)
            .expect("a v1 block reads"),
        data
    );
    // Restamping writes version 2.
    store.restamp(b, Generation(2)).expect("restamp v1");
    assert_eq!(fs::read(&crc).expect("crc")[4], 2);
    assert_eq!(store.generation(b).expect("generation"), Generation(2));
    // A block of the first generation is written at version 1 (an older binary reads it).
    let first = id(9, 4);
    let mut w = store.create(first, G1).expect("create");
    w.write(&data).expect("write");
    w.finalize().expect("finalize");
    let crc1 = dir.path().join("finalized").join(format!("{first}.crc"));
    assert_eq!(fs::read(&crc1).expect("crc")[4], 1);
    assert_eq!(store.generation(first).expect("generation"), G1);
    // A version 2 header cut inside its generation is a damaged block.
    fs::write(&crc, &v2[..12]).expect("cut");
    assert!(matches!(
        store.generation(b),
        Err(StoreError::Corrupt { .. })
    ));
}
