//! The retry cache (HDFS's `RetryCache`), journaled: the result of every client mutation is
//! stored under (client id, call id) in the same write as the mutation, so a call retried
//! across a failover finds its first result on whichever replica is now the active and is
//! not applied twice. It is bounded by age (leader time carried in the entries) and by
//! count, evicting oldest first; both bounds are constants so every replica evicts alike.
//!
//! Eviction resumes after the last key it evicted (kept in `meta`), never from the start of
//! `retry_order`: the start is where its own delete tombstones pile up until a compaction, so
//! a scan from there stepped over every result evicted so far, on every entry. Once a busy
//! cluster had run for the expiry time, each create then cost milliseconds more, and more
//! with every minute (`cargo bench --bench apply`, "creates, evicting").

use super::format::{RetryRecord, RetryResult};
use super::{CallId, ClientId, Proposal};
use crate::namespace::inode::{decode_record, encode_record};
use crate::namespace::kv::{Cf, KvRead, Txn};
use crate::namespace::{ApplyCtx, NsError, OpOutput, StoreError};

/// How long a result stays (HDFS's `dfs.namenode.retrycache.expirytime.millis` default).
pub const RETRY_TTL_MS: u64 = 10 * 60 * 1000;
/// At most this many results are kept.
pub const RETRY_MAX_ENTRIES: u64 = 1_000_000;

const KEY_COUNT: &[u8] = b"retry_count";
/// The last `retry_order` key evicted: every key up to it is gone.
const KEY_EVICTED_TO: &[u8] = b"retry_evicted_to";

fn key(client: &ClientId, call_id: CallId) -> Vec<u8> {
    let mut k = client.0.to_vec();
    k.extend_from_slice(&call_id.to_be_bytes());
    k
}

fn order_key(time_ms: u64, client: &ClientId, call_id: CallId) -> Vec<u8> {
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

/// The recorded result of `p`, if its call id was applied before: its first result when it
/// is the same operation, a `RetryMismatch` refusal when the call id recorded another one
/// (a client that reused a call id, or another client that recorded a result under this
/// one's future call id to have a later call answered without being applied).
pub fn lookup<R: KvRead + ?Sized>(
    txn: &Txn<'_, R>,
    p: &Proposal,
) -> Result<Option<Result<OpOutput, NsError>>, StoreError> {
    if p.call_id == CallId::UNCACHED {
        return Ok(None);
    }
    let Some(v) = txn.get(Cf::Retry, &key(&p.client, p.call_id))? else {
        return Ok(None);
    };
    let record = decode_record::<RetryResult>("retry", &v)?;
    match record.fingerprint {
        Some(f) if f != p.op.fingerprint() => Ok(Some(Err(NsError::RetryMismatch {
            call_id: p.call_id.get(),
            op: p.op.name().to_owned(),
        }))),
        _ => Ok(Some(record.result)),
    }
}

/// The time the results of an entry at `ctx` are filed under in the eviction order: the
/// entry's time, unless a new active's clock is behind the last evicted key's, in which case
/// just after that key, so that eviction (which resumes after it) still finds them.
pub fn order_time<R: KvRead + ?Sized>(txn: &Txn<'_, R>, ctx: &ApplyCtx) -> Result<u64, StoreError> {
    let evicted = txn
        .get(Cf::Meta, KEY_EVICTED_TO)?
        .and_then(|k| k.get(..8).and_then(crate::namespace::keys::u64_value));
    Ok(match evicted {
        Some(t) if t >= ctx.now_ms => t.saturating_add(1),
        _ => ctx.now_ms,
    })
}

/// Records the result of `p`, filed at `order_time` (from [`order_time`]).
pub fn record<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    order_time: u64,
    p: &Proposal,
    result: &Result<OpOutput, NsError>,
) -> Result<(), StoreError> {
    if p.call_id == CallId::UNCACHED {
        return Ok(());
    }
    let record = RetryRecord {
        fingerprint: Some(p.op.fingerprint()),
        result: result.clone(),
    };
    txn.put(
        Cf::Retry,
        key(&p.client, p.call_id),
        encode_record::<RetryResult>(&record),
    );
    txn.put(
        Cf::RetryOrder,
        order_key(order_time, &p.client, p.call_id),
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
    let evicted_to = txn.get(Cf::Meta, KEY_EVICTED_TO)?;
    let oldest = txn.scan(Cf::RetryOrder, &[], evicted_to.as_deref(), budget)?;
    let mut last = None;
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
        txn.delete(Cf::RetryOrder, k.clone());
        n = n.saturating_sub(1);
        last = Some(k);
    }
    if let Some(k) = last {
        txn.put(Cf::Meta, KEY_COUNT.to_vec(), n.to_be_bytes().to_vec());
        txn.put(Cf::Meta, KEY_EVICTED_TO.to_vec(), k);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::Op;
    use crate::namespace::kv::MemKv;

    fn call(call_id: u64) -> Proposal {
        Proposal {
            client: ClientId([7; 16]),
            call_id: CallId(call_id),
            op: Op::RenewLease { holder: "w".into() },
            access: None,
        }
    }

    fn ctx(now_ms: u64) -> ApplyCtx {
        ApplyCtx {
            now_ms,
            lease_ms: 60_000,
        }
    }

    /// Runs `f` in one transaction and commits it, as one apply does.
    fn apply<T>(kv: &mut MemKv, f: impl FnOnce(&mut Txn<'_, MemKv>) -> T) -> T {
        let mut txn = Txn::new(&*kv);
        let out = f(&mut txn);
        let writes = txn.into_writes();
        kv.commit(writes);
        out
    }

    fn cached(kv: &MemKv, call_id: u64) -> bool {
        lookup(&Txn::new(kv), &call(call_id))
            .expect("lookup")
            .is_some()
    }

    /// Expired results go oldest first, within the budget; eviction resumes after the last
    /// key it evicted; and the results of an active whose clock is behind that key are filed
    /// after it, so they are still evicted in their turn.
    #[test]
    fn eviction_resumes_after_the_last_evicted_key_whatever_the_clock() {
        let mut kv = MemKv::new();
        apply(&mut kv, |txn| {
            let t = order_time(txn, &ctx(1_000)).expect("time");
            assert_eq!(t, 1_000);
            for id in 1..=3 {
                record(txn, t, &call(id), &Ok(OpOutput::Done)).expect("record");
            }
        });
        assert!((1..=3).all(|id| cached(&kv, id)));
        apply(&mut kv, |txn| {
            evict(txn, &ctx(1_000 + RETRY_TTL_MS - 1), 10)
        })
        .expect("evict");
        assert!((1..=3).all(|id| cached(&kv, id)), "nothing has expired yet");
        apply(&mut kv, |txn| evict(txn, &ctx(1_000 + RETRY_TTL_MS), 2)).expect("evict");
        assert_eq!(
            (1..=3).map(|id| cached(&kv, id)).collect::<Vec<_>>(),
            [false, false, true],
            "the two oldest, within the budget"
        );
        // A new active whose clock is 500 ms behind.
        apply(&mut kv, |txn| {
            let t = order_time(txn, &ctx(500)).expect("time");
            assert_eq!(t, 1_001, "filed after the last evicted key");
            record(txn, t, &call(4), &Ok(OpOutput::Done)).expect("record");
        });
        apply(&mut kv, |txn| evict(txn, &ctx(1_000 + RETRY_TTL_MS), 10)).expect("evict");
        assert_eq!(
            (1..=4).map(|id| cached(&kv, id)).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        apply(&mut kv, |txn| evict(txn, &ctx(1_001 + RETRY_TTL_MS), 10)).expect("evict");
        assert!(!cached(&kv, 4));
        assert_eq!(count(&Txn::new(&kv)).expect("count"), 0);
    }
}
