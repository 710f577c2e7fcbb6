//! raftfs-codec: the erasure codecs of the striped layout (DESIGN §6): the parity of a stripe's k data cells,
//! and the rebuilding of any cells lost from any k survivors.
//!
//! Reed-Solomon over GF(2^8) uses the Cauchy generator matrix of ISA-L's
//! `gf_gen_cauchy1_matrix`, which HDFS's RS coder also uses, so our parity cells are byte for
//! byte HDFS's for the same data (`tests/codec_isal.rs` checks that against ISA-L itself).
//! The arithmetic is `rusty_erasure`'s (pure Rust, SIMD kernels chosen at run time), picked
//! by `cargo bench --bench codec` against ISA-L on this machine (README, performance). XOR is
//! HDFS's `XOR-k-1`.
//!
//! The codec sits behind [`ErasureCodec`] so that the striping code does not care which one
//! (or which implementation) a policy uses.

mod rs;
mod xor;

use raftfs_core::{EcCodec, StoragePolicy};

pub use rs::ReedSolomon;
pub use xor::Xor;

/// Why a stripe could not be coded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Fewer than k cells survive: the stripe cannot be rebuilt.
    #[error("{have} of the {need} cells needed to decode are available")]
    TooFewCells { have: usize, need: usize },
    /// Wrong number of cells, cells of different lengths, an index out of range.
    #[error("bad stripe shape: {0}")]
    Shape(String),
    /// A codec that cannot exist (k or m zero or too large for GF(2^8)).
    #[error("unsupported codec {name}-{k}-{m}: {why}")]
    Unsupported {
        name: String,
        k: usize,
        m: usize,
        why: String,
    },
}

/// One erasure code: `k` data cells and `m` parity cells per stripe.
pub trait ErasureCodec: Send + Sync + std::fmt::Debug {
    /// Data cells per stripe (k).
    fn data_cells(&self) -> usize;

    /// Parity cells per stripe (m).
    fn parity_cells(&self) -> usize;

    /// Computes the `m` parity cells of the `k` data cells (all of one length).
    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError>;

    /// Rebuilds the cells at `lost` (indices in `0..k+m`, data first) from the cells present
    /// in `cells` (`None` where missing; at least k present), into `out`.
    fn decode(
        &self,
        cells: &[Option<&[u8]>],
        lost: &[usize],
        out: &mut [&mut [u8]],
    ) -> Result<(), CodecError>;
}

/// The codec `kind` with `k` data and `m` parity cells.
pub fn codec(kind: EcCodec, k: usize, m: usize) -> Result<Box<dyn ErasureCodec>, CodecError> {
    match kind {
        EcCodec::Rs => Ok(Box::new(ReedSolomon::new(k, m)?)),
        EcCodec::Xor => Ok(Box::new(Xor::new(k, m)?)),
    }
}

/// The codec of an erasure-coded policy; `None` for a replicated one.
pub fn for_policy(policy: &StoragePolicy) -> Result<Option<Box<dyn ErasureCodec>>, CodecError> {
    match policy {
        StoragePolicy::Replicated(_) => Ok(None),
        StoragePolicy::ErasureCoded {
            codec: kind,
            data,
            parity,
            ..
        } => codec(*kind, usize::from(*data), usize::from(*parity)).map(Some),
    }
}

/// Checks the common shape rules of [`ErasureCodec::decode`].
fn check_decode_shape(
    k: usize,
    m: usize,
    cells: &[Option<&[u8]>],
    lost: &[usize],
    out: &[&mut [u8]],
) -> Result<(), CodecError> {
    if cells.len() != k + m {
        return Err(CodecError::Shape(format!(
            "{} cells given, a stripe has {}",
            cells.len(),
            k + m
        )));
    }
    if lost.len() != out.len() {
        return Err(CodecError::Shape(format!(
            "{} cells to rebuild but {} outputs",
            lost.len(),
            out.len()
        )));
    }
    if let Some(bad) = lost.iter().find(|i| **i >= k + m) {
        return Err(CodecError::Shape(format!(
            "cell index {bad} out of 0..{}",
            k + m
        )));
    }
    if let Some(there) = lost.iter().find(|i| cells[**i].is_some()) {
        return Err(CodecError::Shape(format!(
            "cell {there} is to be rebuilt but was given"
        )));
    }
    let present: Vec<usize> = cells.iter().filter_map(|c| c.map(<[u8]>::len)).collect();
    if present.len() < k {
        return Err(CodecError::TooFewCells {
            have: present.len(),
            need: k,
        });
    }
    let len = present[0];
    if present.iter().any(|l| *l != len) || out.iter().any(|o| o.len() != len) {
        return Err(CodecError::Shape("cells of different lengths".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(k: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut x = seed | 1;
        (0..k)
            .map(|_| {
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            })
            .collect()
    }

    /// Every erasure-coded policy the one parser accepts has a codec: a blockserver handed a
    /// task or a partial cell of an accepted policy can decode it (fuzz/partial_plan found
    /// `XOR-1-1-...` accepted by the parser and refused here).
    #[test]
    fn every_accepted_policy_has_a_codec() {
        for codec in ["RS", "XOR"] {
            for k in 0..=33 {
                for m in 0..=33 {
                    let name = format!("{codec}-{k}-{m}-1k");
                    if let Ok(policy) = name.parse::<StoragePolicy>() {
                        let c = for_policy(&policy).expect(&name).expect("erasure-coded");
                        assert_eq!((c.data_cells(), c.parity_cells()), (k, m), "{name}");
                    }
                }
            }
        }
    }

    /// Every way of losing up to m cells.
    fn loss_patterns(n: usize, m: usize) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        for mask in 1u32..(1 << n) {
            if mask.count_ones() as usize <= m {
                out.push((0..n).filter(|i| mask & (1 << i) != 0).collect());
            }
        }
        out
    }

    #[test]
    fn every_policy_rebuilds_every_loss_it_can_survive() {
        for (name, k, m) in [
            (EcCodec::Rs, 6, 3),
            (EcCodec::Rs, 3, 2),
            (EcCodec::Rs, 10, 4),
            (EcCodec::Xor, 2, 1),
        ] {
            let codec = codec(name, k, m).expect("codec");
            // Lengths that are not multiples of any SIMD width too.
            for len in [1, 31, 4096 + 7] {
                let data = cells(k, len, (k * 31 + len) as u64);
                let mut parity = vec![vec![0u8; len]; m];
                {
                    let d: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
                    let mut p: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
                    codec.encode(&d, &mut p).expect("encode");
                }
                let all: Vec<&Vec<u8>> = data.iter().chain(parity.iter()).collect();
                for lost in loss_patterns(k + m, m) {
                    let present: Vec<Option<&[u8]>> = (0..k + m)
                        .map(|i| (!lost.contains(&i)).then(|| all[i].as_slice()))
                        .collect();
                    let mut out = vec![vec![0u8; len]; lost.len()];
                    {
                        let mut o: Vec<&mut [u8]> = out.iter_mut().map(Vec::as_mut_slice).collect();
                        codec.decode(&present, &lost, &mut o).expect("decode");
                    }
                    for (j, i) in lost.iter().enumerate() {
                        assert_eq!(&out[j], all[*i], "{name:?}-{k}-{m} len {len} lost {lost:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_shapes_and_too_many_losses_are_typed_errors() {
        let rs = codec(EcCodec::Rs, 3, 2).expect("codec");
        let data = cells(3, 8, 7);
        let d: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut p1 = vec![0u8; 8];
        assert!(matches!(
            rs.encode(&d, &mut [&mut p1]),
            Err(CodecError::Shape(_))
        ));
        let three_lost = [None, None, None, Some(d[0]), Some(d[1])];
        let mut o = vec![vec![0u8; 8]; 3];
        let mut outs: Vec<&mut [u8]> = o.iter_mut().map(Vec::as_mut_slice).collect();
        assert_eq!(
            rs.decode(&three_lost, &[0, 1, 2], &mut outs),
            Err(CodecError::TooFewCells { have: 2, need: 3 })
        );
        let short = [Some(&d[0][..4]), Some(d[1]), Some(d[2]), None, None];
        let mut one = vec![0u8; 8];
        assert!(matches!(
            rs.decode(&short, &[3], &mut [&mut one]),
            Err(CodecError::Shape(_))
        ));
        assert!(matches!(
            codec(EcCodec::Rs, 0, 3),
            Err(CodecError::Unsupported { .. })
        ));
        assert!(matches!(
            codec(EcCodec::Xor, 2, 2),
            Err(CodecError::Unsupported { .. })
        ));
    }
}
