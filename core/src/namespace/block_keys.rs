//! The block keys (DESIGN §9) as journaled: the active rolls a new key through an entry
//! ([`super::Op::RollBlockKey`]), so that every member signs and hands out the same keys and
//! a new active keeps the old one's tokens good.

use serde::{Deserialize, Serialize};

use super::error::{NsError, StoreError};
use super::inode::{decode, encode};
use super::kv::{Cf, KvRead, Txn};
use crate::block_token::{BlockKey, KeyRing, MAX_KEYS};
use crate::format::{self, FormatError, Schema};

/// Key of the keys in the `meta` column family.
const KEY: &[u8] = b"block_keys";

/// The record: the live keys, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockKeys(pub Vec<BlockKey>);

impl Schema for BlockKeys {
    type Value = Self;
    const RECORD: &'static str = "block keys";
    const CURRENT: u16 = 1;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }
}

/// The keys the journal holds.
pub fn load<R: KvRead + ?Sized>(kv: &R) -> Result<KeyRing, StoreError> {
    Ok(match kv.get(Cf::Meta, KEY)? {
        Some(v) => KeyRing::from_keys(decode::<BlockKeys>("meta", &v)?.0),
        None => KeyRing::default(),
    })
}

/// Adds `key` (made by the leader, carried in the entry) and forgets the keys expired at the
/// entry's time. A key whose id is not above the newest is refused: two rolls proposed at
/// once both name the same next id, and the second changes nothing.
pub fn roll<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    now_ms: u64,
    key: &BlockKey,
) -> Result<(), super::ApplyError> {
    let mut ring = load(txn)?;
    if ring.newest().is_some_and(|k| k.id >= key.id) {
        return Err(NsError::InvalidArgument(format!(
            "block key {} is not above the newest, {}",
            key.id,
            ring.next_id().saturating_sub(1)
        ))
        .into());
    }
    ring.learn([key.clone()], now_ms);
    debug_assert!(ring.len() <= MAX_KEYS);
    let keys = BlockKeys(ring.keys().cloned().collect());
    txn.put(Cf::Meta, KEY.to_vec(), encode(&keys));
    Ok(())
}
