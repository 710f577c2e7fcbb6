//! Reed-Solomon with ISA-L's (and HDFS's) Cauchy matrix, on `rusty_erasure`'s kernels.

use super::{CodecError, ErasureCodec, check_decode_shape};

/// RS(k, m) over GF(2^8) with the Cauchy generator matrix of `gf_gen_cauchy1_matrix`.
#[derive(Debug)]
pub struct ReedSolomon {
    coder: rusty_erasure::Coder,
    k: usize,
    m: usize,
}

impl ReedSolomon {
    pub fn new(k: usize, m: usize) -> Result<Self, CodecError> {
        let unsupported = |why: String| CodecError::Unsupported {
            name: "RS".into(),
            k,
            m,
            why,
        };
        if k == 0 || m == 0 || k + m > 255 {
            return Err(unsupported("needs k, m > 0 and k + m <= 255".into()));
        }
        let matrix = rusty_erasure::Matrix::cauchy(k, m).map_err(|e| unsupported(e.to_string()))?;
        let coder = rusty_erasure::coder(matrix).map_err(|e| unsupported(e.to_string()))?;
        Ok(Self { coder, k, m })
    }
}

impl ErasureCodec for ReedSolomon {
    fn data_cells(&self) -> usize {
        self.k
    }

    fn parity_cells(&self) -> usize {
        self.m
    }

    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError> {
        self.coder
            .encode(data, parity)
            .map_err(|e| CodecError::Shape(e.to_string()))
    }

    fn decode(
        &self,
        cells: &[Option<&[u8]>],
        lost: &[usize],
        out: &mut [&mut [u8]],
    ) -> Result<(), CodecError> {
        check_decode_shape(self.k, self.m, cells, lost, out)?;
        self.coder
            .recover(cells, lost, out)
            .map_err(|e| CodecError::Shape(e.to_string()))
    }
}
