//! Our Reed-Solomon parity is ISA-L's (and so HDFS's) byte for byte, for every RS policy and
//! cell lengths that are and are not multiples of the SIMD widths; our decoder rebuilds what
//! ISA-L's encoder wrote, and ISA-L's decoder what ours wrote. Needs Debian's `libisal-dev`
//! (scripts/install-deps.sh).

mod isal;

use isal::cells;
use raftfs_codec::codec;
use raftfs_core::EcCodec;

#[test]
fn parity_is_byte_identical_to_isal_and_decodes_isal_parity() {
    for (k, m) in [(6, 3), (3, 2), (10, 4)] {
        let ours = codec(EcCodec::Rs, k, m).expect("codec");
        let theirs = isal::Isal::new(k, m);
        for len in [32, 1000, 64 * 1024 + 3, 1 << 20] {
            let data = cells(k, len, (k * 1000 + len) as u64);
            let d: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
            let mut a = vec![vec![0u8; len]; m];
            let mut b = vec![vec![0u8; len]; m];
            {
                let mut pa: Vec<&mut [u8]> = a.iter_mut().map(Vec::as_mut_slice).collect();
                ours.encode(&d, &mut pa).expect("encode");
                let mut pb: Vec<&mut [u8]> = b.iter_mut().map(Vec::as_mut_slice).collect();
                theirs.encode(&d, &mut pb);
            }
            assert!(
                a == b,
                "RS-{k}-{m} parity differs from ISA-L's at length {len}"
            );

            // Lose the first m cells (all data): rebuild them from ISA-L's parity.
            let lost: Vec<usize> = (0..m).collect();
            let all: Vec<&[u8]> = d
                .iter()
                .copied()
                .chain(b.iter().map(Vec::as_slice))
                .collect();
            let present: Vec<Option<&[u8]>> = (0..k + m)
                .map(|i| (!lost.contains(&i)).then(|| all[i]))
                .collect();
            let mut out = vec![vec![0u8; len]; m];
            let mut o: Vec<&mut [u8]> = out.iter_mut().map(Vec::as_mut_slice).collect();
            ours.decode(&present, &lost, &mut o).expect("decode");
            for (j, i) in lost.iter().enumerate() {
                assert!(out[j] == data[*i], "RS-{k}-{m} cell {i} not rebuilt");
            }
        }
    }
}

#[test]
fn isals_decoder_rebuilds_our_cells() {
    let (k, m) = (6, 3);
    let ours = codec(EcCodec::Rs, k, m).expect("codec");
    let theirs = isal::Isal::new(k, m);
    let len = 4096;
    let data = cells(k, len, 99);
    let d: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity = vec![vec![0u8; len]; m];
    let mut p: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
    ours.encode(&d, &mut p).expect("encode");
    let all: Vec<&[u8]> = d
        .iter()
        .copied()
        .chain(parity.iter().map(Vec::as_slice))
        .collect();
    let lost = [1usize, 4, 7];
    let (tables, survivors) = theirs.decode_tables(&lost);
    let sources: Vec<&[u8]> = survivors.iter().map(|s| all[*s]).collect();
    let mut out = vec![vec![0u8; len]; lost.len()];
    let mut o: Vec<&mut [u8]> = out.iter_mut().map(Vec::as_mut_slice).collect();
    theirs.decode(&tables, &sources, &mut o);
    for (j, i) in lost.iter().enumerate() {
        assert!(
            out[j] == all[*i],
            "ISA-L did not rebuild cell {i} of our stripe"
        );
    }
}
