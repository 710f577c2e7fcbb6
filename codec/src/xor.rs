//! XOR-k-1 (HDFS's XOR codec): one parity cell, the XOR of the k data cells.

use super::{CodecError, ErasureCodec, check_decode_shape};

/// k data cells, one parity cell.
#[derive(Debug)]
pub struct Xor {
    k: usize,
}

impl Xor {
    pub fn new(k: usize, m: usize) -> Result<Self, CodecError> {
        if k < 2 || m != 1 {
            return Err(CodecError::Unsupported {
                name: "XOR".into(),
                k,
                m,
                why: "XOR has one parity cell and at least two data cells".into(),
            });
        }
        Ok(Self { k })
    }
}

/// `out` = XOR of `sources` (all of `out`'s length).
fn xor_into(sources: &[&[u8]], out: &mut [u8]) -> Result<(), CodecError> {
    rusty_erasure::raid::xor_gen(sources, out).map_err(|e| CodecError::Shape(e.to_string()))
}

impl ErasureCodec for Xor {
    fn data_cells(&self) -> usize {
        self.k
    }

    fn parity_cells(&self) -> usize {
        1
    }

    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), CodecError> {
        let given = parity.len();
        match (data.len() == self.k, parity) {
            (true, [p]) => xor_into(data, p),
            _ => Err(CodecError::Shape(format!(
                "XOR-{}-1 takes {} data cells and 1 parity cell, not {} and {given}",
                self.k,
                self.k,
                data.len(),
            ))),
        }
    }

    fn decode(
        &self,
        cells: &[Option<&[u8]>],
        lost: &[usize],
        out: &mut [&mut [u8]],
    ) -> Result<(), CodecError> {
        check_decode_shape(self.k, 1, cells, lost, out)?;
        // With one parity cell, at most one cell is lost: it is the XOR of all the others.
        let present: Vec<&[u8]> = cells.iter().flatten().copied().collect();
        match out {
            [] => Ok(()),
            [o] => xor_into(&present, o),
            _ => Err(CodecError::TooFewCells {
                have: present.len(),
                need: self.k,
            }),
        }
    }
}
