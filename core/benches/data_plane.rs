//! `cargo bench -p raftfs-core --bench data_plane`: the CPU the data plane's checks add to
//! each call (DESIGN §9), on one thread: a block access token's check on every read, write,
//! `Partial` and `BlockInfo` (decode, HMAC-SHA256, claims), a token's signing on the
//! metaserver (per group in a `GetBlocks` page), and the reader's CRC32C check of every byte
//! it reads (`ChunkedRead`, the same work the blockserver does on the way out).
//!
//! Printed: ns per token check and per signature, and µs per MiB checked, with the MiB/s
//! that is; the figures go in the README beside a 1 MiB read's cost on the wire.

use std::hint::black_box;
use std::time::Instant;

use raftfs_core::block_token::{
    BlockKey, Claims, DEFAULT_POOL, Indices, KeyRing, Mode, Want, check,
};
use raftfs_core::checksum::{ChunkedRead, crc32c};
use raftfs_core::id::GroupId;
use raftfs_core::identity::{Caller, PortPolicy, Principal, Proof, User};
use raftfs_core::policy::CHECKSUM_CHUNK;

const TOKENS: u32 = 200_000;
const MIB: usize = 1 << 20;
const READS: usize = 512;

fn main() {
    let ring = KeyRing::from_keys((1..=60).map(|id| BlockKey {
        id,
        secret: [id as u8; 32],
        created_ms: 0,
        expires_ms: u64::MAX / 2,
    }));
    let caller = Caller {
        principal: Principal::User(User {
            name: "alice".into(),
            groups: vec!["analysts".into()],
        }),
        proof: Proof::Certificate,
        port: PortPolicy::Mtls,
    };
    let claims = |g| {
        Claims::new(
            &caller,
            GroupId(g),
            Indices::ALL,
            &[Mode::Read],
            0,
            3_600_000,
        )
    };

    let start = Instant::now();
    let mut tokens = Vec::with_capacity(TOKENS as usize);
    for g in 0..TOKENS {
        tokens.push(ring.mint(claims(u64::from(g)), 0).expect("a key").encode());
    }
    let sign_ns = start.elapsed().as_nanos() as f64 / f64::from(TOKENS);

    let start = Instant::now();
    for (g, t) in tokens.iter().enumerate() {
        let want = Want {
            pool: DEFAULT_POOL,
            group: GroupId(g as u64),
            indices: Indices::one(3),
            mode: Mode::Read,
            server: raftfs_core::id::BlockServerId(1),
        };
        check(&ring, black_box(t), &want, &caller, false, 1).expect("valid");
    }
    let check_ns = start.elapsed().as_nanos() as f64 / f64::from(TOKENS);

    let block: Vec<u8> = (0..MIB).map(|i| (i * 31) as u8).collect();
    let sums: Vec<u32> = block.chunks(CHECKSUM_CHUNK as usize).map(crc32c).collect();
    let start = Instant::now();
    for _ in 0..READS {
        let mut r = ChunkedRead::new(0, MIB as u64, MIB);
        r.push(0, black_box(&block), &sums).expect("matches");
        black_box(r.into_bytes());
    }
    let per_mib_us = start.elapsed().as_secs_f64() * 1e6 / READS as f64;

    println!(
        "block token ({} bytes): sign {sign_ns:.0} ns, check {check_ns:.0} ns",
        tokens[0].len()
    );
    println!(
        "end-to-end checksums: {per_mib_us:.0} us per MiB checked and kept ({:.0} MiB/s)",
        1e6 / per_mib_us
    );
}
