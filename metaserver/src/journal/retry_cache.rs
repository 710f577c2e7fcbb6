//! The retry cache (HDFS's `RetryCache`), journaled: the result of every client mutation is
//! stored under (client id, call id) in the same write as the mutation, so a call retried
//! across a failover finds its first result on whichever replica is now the active and is
//! not applied twice. It is bounded by age (leader time carried in the entries) and by
//! count, evicting oldest first; both bounds are constants so every replica evicts alike.

use serde::{Deserialize, Serialize};

use super::{ClientId, Proposal};
use crate::namespace::inode::{decode, encode};
use crate::namespace::kv::{Cf, KvRead, Txn};
use crate::namespace::{ApplyCtx, NsError, OpOutput, StoreError};

/// How long a result stays (HDFS's `dfs.namenode.retrycache.expirytime.millis` default).
pub const RETRY_TTL_MS: u64 = 10 * 60 * 1000;
/// At most this many results are kept.
pub const RETRY_MAX_ENTRIES: u64 = 1_000_000;

const KEY_COUNT: &[u8] = b"retry_count";

#[derive(Serialize, Deserialize)]
struct RetryRecord {
    result: Result<OpOutput, NsError>,
}

fn key(client: &ClientId, call_id: u64) -> Vec<u8> {
    let mut k = client.0.to_vec();
    k.extend_from_slice(&call_id.to_be_bytes());
    k
}

fn order_key(time_ms: u64, client: &ClientId, call_id: u64) -> Vec<u8> {
    let mut k = time_ms.to_be_bytes().to_vec();
    k.extend_from_slice(&key(client, call_id));
    k
}

fn count<R: KvRead + ?Sized>(txn: &Txn<'_, R>) -> Result<u64, StoreError> {
    Ok(txn
        .get(Cf::Meta, KEY_COUNT)?
        .and_then(|v| crate::namespace::keys::u64_value(&v))
        .unwrap_or(0))
}

/// The recorded result of `p`, if it was applied before.
pub fn lookup<R: KvRead + ?Sized>(
    txn: &Txn<'_, R>,
    p: &Proposal,
) -> Result<Option<Result<OpOutput, NsError>>, StoreError> {
    if p.call_id == 0 {
        return Ok(None);
    }
    match txn.get(Cf::Retry, &key(&p.client, p.call_id))? {
        Some(v) => Ok(Some(decode::<RetryRecord>("retry", &v)?.result)),
        None => Ok(None),
    }
}

/// Records the result of `p`.
pub fn record<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    p: &Proposal,
    result: &Result<OpOutput, NsError>,
) -> Result<(), StoreError> {
    if p.call_id == 0 {
        return Ok(());
    }
    txn.put(
        Cf::Retry,
        key(&p.client, p.call_id),
        encode(&RetryRecord {
            result: result.clone(),
        }),
    );
    txn.put(
        Cf::RetryOrder,
        order_key(ctx.now_ms, &p.client, p.call_id),
        Vec::new(),
    );
    let n = count(txn)?.saturating_add(1);
    txn.put(Cf::Meta, KEY_COUNT.to_vec(), n.to_be_bytes().to_vec());
    Ok(())
}

/// Evicts results older than the TTL or beyond the count bound, oldest first; at most
/// `budget` per call so that one entry's apply stays short (eviction keeps pace because every
/// entry evicts up to twice what it adds).
pub fn evict<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    budget: usize,
) -> Result<(), StoreError> {
    let mut n = count(txn)?;
    let oldest = txn.scan(Cf::RetryOrder, &[], None, budget)?;
    let mut evicted = 0u64;
    for (k, _) in oldest {
        let Some(time) = k.get(..8).and_then(crate::namespace::keys::u64_value) else {
            return Err(StoreError::Corrupt {
                cf: "retry_order",
                reason: "short key".into(),
            });
        };
        let expired = time.saturating_add(RETRY_TTL_MS) <= ctx.now_ms;
        if !expired && n <= RETRY_MAX_ENTRIES {
            break;
        }
        txn.delete(Cf::Retry, k[8..].to_vec());
        txn.delete(Cf::RetryOrder, k);
        n = n.saturating_sub(1);
        evicted += 1;
    }
    if evicted > 0 {
        txn.put(Cf::Meta, KEY_COUNT.to_vec(), n.to_be_bytes().to_vec());
    }
    Ok(())
}
