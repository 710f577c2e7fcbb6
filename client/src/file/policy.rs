//! A file's layout from its storage policy's name (`REPLICATED-3`, `RS-6-3-1024k`, ...): how
//! many internal blocks a group has, and for erasure coding the striping and the codec.

use crate::codec::{self, ErasureCodec};
use crate::striping::Layout;

use super::FileError;

/// How a file's groups are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilePolicy {
    /// `n` full copies of every block.
    Replicated(usize),
    /// Striped: `k` data and `m` parity cells of `cell` bytes.
    Striped {
        codec: Codec,
        k: usize,
        m: usize,
        cell: u64,
    },
}

/// Erasure codecs by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Rs,
    Xor,
}

impl FilePolicy {
    /// Parses a policy name as the metaserver prints it.
    pub fn parse(name: &str) -> Result<Self, FileError> {
        let bad = || FileError::Policy(name.to_owned());
        if let Some(n) = name.strip_prefix("REPLICATED-") {
            let n: usize = n.parse().map_err(|_| bad())?;
            return if n == 0 {
                Err(bad())
            } else {
                Ok(Self::Replicated(n))
            };
        }
        let parts: Vec<&str> = name.split('-').collect();
        let [codec, k, m, cell] = parts[..] else {
            return Err(bad());
        };
        let codec = match codec {
            "RS" => Codec::Rs,
            "XOR" => Codec::Xor,
            _ => return Err(bad()),
        };
        let k: usize = k.parse().map_err(|_| bad())?;
        let m: usize = m.parse().map_err(|_| bad())?;
        let cell_kib: u64 = cell
            .strip_suffix('k')
            .and_then(|c| c.parse().ok())
            .ok_or_else(bad)?;
        if k == 0 || m == 0 || cell_kib == 0 {
            return Err(bad());
        }
        Ok(Self::Striped {
            codec,
            k,
            m,
            cell: cell_kib * 1024,
        })
    }

    /// Internal blocks of one group (k+m, or the replication factor).
    pub fn width(&self) -> usize {
        match self {
            Self::Replicated(n) => *n,
            Self::Striped { k, m, .. } => k + m,
        }
    }

    /// The striped layout, for erasure-coded files.
    pub fn layout(&self) -> Option<Layout> {
        match self {
            Self::Replicated(_) => None,
            Self::Striped { k, m, cell, .. } => Layout::new(*k, *m, *cell).ok(),
        }
    }

    /// The codec, for erasure-coded files.
    pub fn codec(&self) -> Result<Option<Box<dyn ErasureCodec>>, FileError> {
        match self {
            Self::Replicated(_) => Ok(None),
            Self::Striped { codec, k, m, .. } => {
                let name = match codec {
                    Codec::Rs => "RS",
                    Codec::Xor => "XOR",
                };
                Ok(Some(codec::codec(name, *k, *m)?))
            }
        }
    }

    /// Data bytes in one group of a file with `block_size`-byte internal blocks.
    pub fn group_capacity(&self, block_size: u64) -> u64 {
        match self {
            Self::Replicated(_) => block_size,
            Self::Striped { k, .. } => block_size.saturating_mul(*k as u64),
        }
    }

    /// How long internal block `index` of a group of `group_len` bytes is.
    pub fn block_len(&self, group_len: u64, index: usize) -> u64 {
        match self.layout() {
            Some(l) => l.block_len(group_len, index),
            None => group_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(
            FilePolicy::parse("REPLICATED-3").expect("ok"),
            FilePolicy::Replicated(3)
        );
        assert_eq!(
            FilePolicy::parse("RS-6-3-1024k").expect("ok"),
            FilePolicy::Striped {
                codec: Codec::Rs,
                k: 6,
                m: 3,
                cell: 1 << 20
            }
        );
        assert_eq!(FilePolicy::parse("XOR-2-1-1024k").expect("ok").width(), 3);
        for bad in [
            "",
            "REPLICATED-0",
            "RS-6-3",
            "LRC-6-3-1024k",
            "RS-0-3-1024k",
            "RS-6-3-0k",
        ] {
            assert!(FilePolicy::parse(bad).is_err(), "{bad}");
        }
    }
}
