//! Wire types to the store's domain types, once, on the receiving side: a block named by a
//! peer becomes a [`BlockId`] here or the request is refused.

use raftfs_proto as pb;

use crate::error::BlockError;
use crate::store::BlockId;

/// The block a data request names.
pub fn block_ref(r: Option<&pb::BlockRef>) -> Result<BlockId, BlockError> {
    let r = r.ok_or_else(|| BlockError::InvalidArgument("no block named".into()))?;
    block_id(r.group, r.index)
}

/// A block from its group and its index on the wire (a u32 there; at most u16 here, far
/// beyond any erasure-coding width).
pub fn block_id(group: u64, index: u32) -> Result<BlockId, BlockError> {
    let index = u16::try_from(index)
        .map_err(|_| BlockError::InvalidArgument(format!("block index {index} out of range")))?;
    Ok(BlockId { group, index })
}

/// A block as block reports carry it.
pub fn reported(block: BlockId, length: u64) -> pb::ReportedBlock {
    pb::ReportedBlock {
        group: block.group,
        index: u32::from(block.index),
        length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_out_of_range_or_missing_are_refused() {
        assert!(matches!(
            block_ref(None),
            Err(BlockError::InvalidArgument(_))
        ));
        let r = pb::BlockRef {
            group: 3,
            index: 70_000,
        };
        assert!(matches!(
            block_ref(Some(&r)),
            Err(BlockError::InvalidArgument(_))
        ));
        let ok = block_id(3, 8).expect("valid");
        assert_eq!((ok.group, ok.index), (3, 8));
        assert_eq!(reported(ok, 5).index, 8);
    }
}
