//! The few ISA-L 2.30 functions the codec is checked and measured against (and the test data) (Debian
//! `libisal-dev`, installed by `scripts/install-deps.sh`): HDFS's native RS coder calls the
//! same ones. Declared by hand rather than through a `-sys` crate: four functions do not
//! justify a second bindgen run (and a rebuild of RocksDB's bindings with it).

#![allow(dead_code, unsafe_code)]

#[link(name = "isal")]
unsafe extern "C" {
    fn gf_gen_cauchy1_matrix(a: *mut u8, m: i32, k: i32);
    fn gf_invert_matrix(input: *mut u8, output: *mut u8, n: i32) -> i32;
    fn ec_init_tables(k: i32, rows: i32, a: *const u8, gftbls: *mut u8);
    fn ec_encode_data(
        len: i32,
        k: i32,
        rows: i32,
        gftbls: *const u8,
        data: *const *const u8,
        coding: *const *mut u8,
    );
}

/// ISA-L's RS(k, m) with the Cauchy matrix: encode tables, and decode tables per loss pattern.
pub struct Isal {
    k: usize,
    m: usize,
    matrix: Vec<u8>,
    encode_tables: Vec<u8>,
}

impl Isal {
    pub fn new(k: usize, m: usize) -> Self {
        let mut matrix = vec![0u8; (k + m) * k];
        // SAFETY: `matrix` has (k + m) * k bytes, as the function writes.
        unsafe { gf_gen_cauchy1_matrix(matrix.as_mut_ptr(), (k + m) as i32, k as i32) };
        let mut encode_tables = vec![0u8; k * m * 32];
        // SAFETY: the parity rows are m * k bytes; the tables k * m * 32.
        unsafe {
            ec_init_tables(
                k as i32,
                m as i32,
                matrix[k * k..].as_ptr(),
                encode_tables.as_mut_ptr(),
            )
        };
        Self {
            k,
            m,
            matrix,
            encode_tables,
        }
    }

    /// Parity cells of `data` (k cells of one length).
    pub fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) {
        assert_eq!((data.len(), parity.len()), (self.k, self.m));
        let len = data[0].len();
        assert!(data.iter().all(|d| d.len() == len) && parity.iter().all(|p| p.len() == len));
        let d: Vec<*const u8> = data.iter().map(|x| x.as_ptr()).collect();
        let p: Vec<*mut u8> = parity.iter_mut().map(|x| x.as_mut_ptr()).collect();
        // SAFETY: k inputs and m outputs of `len` bytes each, tables for (k, m).
        unsafe {
            ec_encode_data(
                len as i32,
                self.k as i32,
                self.m as i32,
                self.encode_tables.as_ptr(),
                d.as_ptr(),
                p.as_ptr(),
            )
        };
    }

    /// Decode tables rebuilding `lost` from the first k surviving cells; and those cells.
    pub fn decode_tables(&self, lost: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let k = self.k;
        let survivors: Vec<usize> = (0..k + self.m)
            .filter(|i| !lost.contains(i))
            .take(k)
            .collect();
        let mut b = vec![0u8; k * k];
        for (r, s) in survivors.iter().enumerate() {
            b[r * k..(r + 1) * k].copy_from_slice(&self.matrix[s * k..(s + 1) * k]);
        }
        let mut inv = vec![0u8; k * k];
        // SAFETY: both k x k.
        let singular = unsafe { gf_invert_matrix(b.as_mut_ptr(), inv.as_mut_ptr(), k as i32) };
        assert_eq!(singular, 0, "survivor matrix not invertible");
        // The row of lost cell l: inv's row l for a data cell; for a parity cell, its encode
        // row times inv.
        let mut rows = vec![0u8; lost.len() * k];
        for (r, l) in lost.iter().enumerate() {
            if *l < k {
                rows[r * k..(r + 1) * k].copy_from_slice(&inv[l * k..(l + 1) * k]);
            } else {
                for j in 0..k {
                    let mut acc = 0u8;
                    for i in 0..k {
                        acc ^= gf_mul(self.matrix[l * k + i], inv[i * k + j]);
                    }
                    rows[r * k + j] = acc;
                }
            }
        }
        let mut tables = vec![0u8; k * lost.len() * 32];
        // SAFETY: rows is lost.len() * k bytes; tables k * rows * 32.
        unsafe {
            ec_init_tables(
                k as i32,
                lost.len() as i32,
                rows.as_ptr(),
                tables.as_mut_ptr(),
            )
        };
        (tables, survivors)
    }

    /// Rebuilds `out.len()` cells with `tables` from `sources` (the survivors, in order).
    pub fn decode(&self, tables: &[u8], sources: &[&[u8]], out: &mut [&mut [u8]]) {
        let len = sources[0].len();
        let s: Vec<*const u8> = sources.iter().map(|x| x.as_ptr()).collect();
        let o: Vec<*mut u8> = out.iter_mut().map(|x| x.as_mut_ptr()).collect();
        // SAFETY: k sources and out.len() outputs of `len` bytes, tables for (k, out.len()).
        unsafe {
            ec_encode_data(
                len as i32,
                self.k as i32,
                out.len() as i32,
                tables.as_ptr(),
                s.as_ptr(),
                o.as_ptr(),
            )
        };
    }
}

/// GF(2^8) multiplication with ISA-L's polynomial (0x11d), for composing decode rows.
fn gf_mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut p) = (u16::from(a), b, 0u16);
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        a <<= 1;
        if a & 0x100 != 0 {
            a ^= 0x11d;
        }
        b >>= 1;
    }
    p as u8
}

/// `n` cells of `len` pseudo-random bytes (xorshift from `seed`): test and benchmark data.
pub fn cells(n: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed | 1;
    (0..n)
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
