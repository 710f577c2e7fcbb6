//! `cargo bench --bench codec`: encode and rebuild speed of our Reed-Solomon codec beside
//! ISA-L 2.30 (Debian `libisal-dev`, the coder HDFS uses natively), in one run, on one core,
//! for 1 MiB cells; in GiB/s of data (k cells per stripe). The goal (issue "data path"): ours
//! at ≥ 0.9× ISA-L for encode and for rebuilding 3 lost cells (RS-6-3).
//!
//! Each figure is the best of 7 rounds of 16 stripes, the two coders alternating round by
//! round so that drift in the machine's speed hits both.

#[path = "../tests/isal/mod.rs"]
mod isal;

use std::time::Instant;

use raftfs_codec::codec;
use raftfs_core::EcCodec;

const LEN: usize = 1 << 20;
const ROUNDS: usize = 7;
const STRIPES: usize = 16;

/// Seconds per stripe of `f`, best round.
fn per_stripe(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..STRIPES {
        f();
    }
    start.elapsed().as_secs_f64() / STRIPES as f64
}

fn gibs(k: usize, secs: f64) -> f64 {
    (k * LEN) as f64 / secs / f64::from(1u32 << 30)
}

fn main() {
    println!(
        "RS erasure coding, {} KiB cells, one core, GiB/s of data (best of {ROUNDS} x {STRIPES} stripes)",
        LEN / 1024
    );
    println!(
        "{:<10}{:>14}{:>14}{:>8}{:>16}{:>16}{:>8}",
        "policy",
        "encode ours",
        "encode ISA-L",
        "ratio",
        "rebuild-m ours",
        "rebuild-m ISA-L",
        "ratio"
    );
    for (k, m) in [(6usize, 3usize), (3, 2), (10, 4)] {
        let ours = codec(EcCodec::Rs, k, m).expect("codec");
        let theirs = isal::Isal::new(k, m);
        let data = isal::cells(k, LEN, (k * 7 + m) as u64);
        let d: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut parity = vec![vec![0u8; LEN]; m];
        let (mut enc_ours, mut enc_isal) = (f64::MAX, f64::MAX);
        for _ in 0..ROUNDS {
            enc_ours = enc_ours.min(per_stripe(&mut || {
                let mut p: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
                ours.encode(&d, &mut p).expect("encode");
            }));
            enc_isal = enc_isal.min(per_stripe(&mut || {
                let mut p: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
                theirs.encode(&d, &mut p);
            }));
        }

        // Rebuild m lost data cells (the worst case a stripe survives).
        let lost: Vec<usize> = (0..m).collect();
        let all: Vec<&[u8]> = d
            .iter()
            .copied()
            .chain(parity.iter().map(Vec::as_slice))
            .collect();
        let present: Vec<Option<&[u8]>> = (0..k + m)
            .map(|i| (!lost.contains(&i)).then(|| all[i]))
            .collect();
        let (tables, survivors) = theirs.decode_tables(&lost);
        let sources: Vec<&[u8]> = survivors.iter().map(|s| all[*s]).collect();
        let mut out = vec![vec![0u8; LEN]; m];
        let (mut dec_ours, mut dec_isal) = (f64::MAX, f64::MAX);
        for _ in 0..ROUNDS {
            dec_ours = dec_ours.min(per_stripe(&mut || {
                let mut o: Vec<&mut [u8]> = out.iter_mut().map(Vec::as_mut_slice).collect();
                ours.decode(&present, &lost, &mut o).expect("decode");
            }));
            dec_isal = dec_isal.min(per_stripe(&mut || {
                let mut o: Vec<&mut [u8]> = out.iter_mut().map(Vec::as_mut_slice).collect();
                theirs.decode(&tables, &sources, &mut o);
            }));
        }
        assert!(
            out.iter().zip(&lost).all(|(o, i)| o == &data[*i]),
            "rebuild is wrong"
        );
        let (eo, ei, dor, di) = (
            gibs(k, enc_ours),
            gibs(k, enc_isal),
            gibs(k, dec_ours),
            gibs(k, dec_isal),
        );
        println!(
            "{:<10}{eo:>14.2}{ei:>14.2}{:>8.2}{dor:>16.2}{di:>16.2}{:>8.2}",
            format!("RS-{k}-{m}"),
            eo / ei,
            dor / di
        );
    }
    println!(
        "(rebuild: ours derives its decode matrix inside the timed loop, ISA-L's tables are made once outside it)"
    );
}
