//! The retry cache (HDFS's `RetryCache`), journaled: the result of every client mutation is
//! stored under (client id, call id) in the same write as the mutation, so a call retried
//! across a failover finds its first result on whichever replica is now the active and is
//! not applied twice. It is bounded by age (leader time carried in the entries) and by
//! count, evicting oldest first; the bounds are constants so every replica evicts alike.
//!
//! Eviction resumes after the last key it evicted (kept in `meta`), never from the start of
//! `retry_order`: the start is where its own delete tombstones pile up until a compaction, so
//! a scan from there stepped over every result evicted so far, on every entry. Once a busy
//! cluster had run for the expiry time, each create then cost milliseconds more, and more
//! with every minute (`cargo bench --bench apply`, "creates, evicting").
//!
//! One principal (the authenticated caller a proposal carries) holds at most
//! [`Limits::per_principal`] results, half the whole: past that its own oldest go
//! (`retry_by_principal` orders each principal's results, with a cursor of its own for the
//! same tombstone reason). A principal flooding the cache with calls therefore evicts its
//! own results, never another's (DESIGN §9).

use sha2::{Digest, Sha256};

use super::format::{RetryRecord, RetryResult};
use super::{CallId, ClientId, Proposal};
use crate::namespace::inode::{decode_record, encode_record};
use crate::namespace::keys::u64_value;
use crate::namespace::kv::{Cf, KvRead, Txn};
use crate::namespace::{ApplyCtx, NsError, OpOutput, StoreError};

/// How long a result stays (HDFS's `dfs.namenode.retrycache.expirytime.millis` default).
pub const RETRY_TTL_MS: u64 = 10 * 60 * 1000;
/// At most this many results are kept.
pub const RETRY_MAX_ENTRIES: u64 = 1_000_000;

/// The bounds of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Results kept in all.
    pub total: u64,
    /// Results one principal may hold: half the whole by default, so that one principal
    /// calling as fast as it can leaves the other half to everyone else. At the active's
    /// fastest (a few thousand mutations a second) that is still minutes of its own calls,
    /// far longer than a client retries one.
    pub per_principal: u64,
}

impl Limits {
    /// The bounds every member applies.
    pub const DEFAULT: Limits = Limits {
        total: RETRY_MAX_ENTRIES,
        per_principal: RETRY_MAX_ENTRIES / 2,
    };
}

const KEY_COUNT: &[u8] = b"retry_count";
/// The last `retry_order` key evicted: every key up to it is gone.
const KEY_EVICTED_TO: &[u8] = b"retry_evicted_to";
/// `retry_count_of/` ++ principal tag: that principal's results.
const KEY_COUNT_OF: &[u8] = b"retry_count_of/";
/// `retry_evicted_of/` ++ principal tag: the last `retry_by_principal` key evicted for it.
const KEY_EVICTED_OF: &[u8] = b"retry_evicted_of/";

/// A principal as the cache files it: 8 bytes of the SHA-256 of its name.
type Tag = [u8; 8];

fn tag_of(p: &Proposal) -> Option<Tag> {
    let user = &p.access.as_ref()?.user;
    let digest = Sha256::digest(user.as_bytes());
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&digest[..8]);
    Some(tag)
}

fn meta_key(prefix: &[u8], tag: &Tag) -> Vec<u8> {
    [prefix, &tag[..]].concat()
}

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

fn counter<R: KvRead + ?Sized>(txn: &Txn<'_, R>, key: &[u8]) -> Result<u64, StoreError> {
    Ok(txn
        .get(Cf::Meta, key)?
        .and_then(|v| u64_value(&v))
        .unwrap_or(0))
}

fn set_counter<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, key: Vec<u8>, n: u64) {
    txn.put(Cf::Meta, key, n.to_be_bytes().to_vec());
}

fn count<R: KvRead + ?Sized>(txn: &Txn<'_, R>) -> Result<u64, StoreError> {
    counter(txn, KEY_COUNT)
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

/// Records the result of `p`, filed at `order_time` (from [`order_time`]); past its
/// principal's bound, that principal's oldest result goes.
pub fn record<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    order_time: u64,
    p: &Proposal,
    result: &Result<OpOutput, NsError>,
    limits: &Limits,
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
    let order = order_key(order_time, &p.client, p.call_id);
    let tag = tag_of(p);
    // The order entry names the principal, so that eviction in time order also removes it
    // from the principal's own order (empty: a result recorded without one).
    txn.put(
        Cf::RetryOrder,
        order.clone(),
        tag.map_or_else(Vec::new, |t| t.to_vec()),
    );
    let n = count(txn)?.saturating_add(1);
    set_counter(txn, KEY_COUNT.to_vec(), n);
    if let Some(tag) = tag {
        txn.put(
            Cf::RetryByPrincipal,
            [&tag[..], &order].concat(),
            Vec::new(),
        );
        let mine = counter(txn, &meta_key(KEY_COUNT_OF, &tag))?.saturating_add(1);
        set_counter(txn, meta_key(KEY_COUNT_OF, &tag), mine);
        if mine > limits.per_principal {
            evict_oldest_of(txn, &tag)?;
        }
    }
    Ok(())
}

/// Evicts the oldest result of the principal `tag`, resuming after the last one evicted.
fn evict_oldest_of<R: KvRead + ?Sized>(txn: &mut Txn<'_, R>, tag: &Tag) -> Result<(), StoreError> {
    let cursor = txn.get(Cf::Meta, &meta_key(KEY_EVICTED_OF, tag))?;
    let oldest = txn.scan(Cf::RetryByPrincipal, tag, cursor.as_deref(), 1)?;
    let Some((k, _)) = oldest.into_iter().next() else {
        return Ok(());
    };
    let order = k[tag.len()..].to_vec();
    if order.len() <= 8 {
        return Err(short_key("retry_by_principal"));
    }
    txn.delete(Cf::Retry, order[8..].to_vec());
    txn.delete(Cf::RetryOrder, order);
    txn.delete(Cf::RetryByPrincipal, k.clone());
    txn.put(Cf::Meta, meta_key(KEY_EVICTED_OF, tag), k);
    let n = count(txn)?.saturating_sub(1);
    set_counter(txn, KEY_COUNT.to_vec(), n);
    let mine = counter(txn, &meta_key(KEY_COUNT_OF, tag))?.saturating_sub(1);
    set_counter(txn, meta_key(KEY_COUNT_OF, tag), mine);
    Ok(())
}

fn short_key(cf: &'static str) -> StoreError {
    StoreError::Corrupt {
        cf,
        reason: "short key".into(),
    }
}

/// Evicts results older than the TTL or beyond the count bound, oldest first; at most
/// `budget` per call so that one entry's apply stays short (eviction keeps pace because every
/// entry evicts up to twice what it adds).
pub fn evict<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    budget: usize,
    limits: &Limits,
) -> Result<(), StoreError> {
    let mut n = count(txn)?;
    let evicted_to = txn.get(Cf::Meta, KEY_EVICTED_TO)?;
    let oldest = txn.scan(Cf::RetryOrder, &[], evicted_to.as_deref(), budget)?;
    let mut last = None;
    for (k, principal) in oldest {
        let Some(time) = k.get(..8).and_then(u64_value) else {
            return Err(short_key("retry_order"));
        };
        let expired = time.saturating_add(RETRY_TTL_MS) <= ctx.now_ms;
        if !expired && n <= limits.total {
            break;
        }
        txn.delete(Cf::Retry, k[8..].to_vec());
        if let Ok(tag) = Tag::try_from(principal.as_slice()) {
            txn.delete(Cf::RetryByPrincipal, [&tag[..], &k].concat());
            let mine = counter(txn, &meta_key(KEY_COUNT_OF, &tag))?.saturating_sub(1);
            set_counter(txn, meta_key(KEY_COUNT_OF, &tag), mine);
        }
        txn.delete(Cf::RetryOrder, k.clone());
        n = n.saturating_sub(1);
        last = Some(k);
    }
    if let Some(k) = last {
        set_counter(txn, KEY_COUNT.to_vec(), n);
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
                record(txn, t, &call(id), &Ok(OpOutput::Done), &Limits::DEFAULT).expect("record");
            }
        });
        assert!((1..=3).all(|id| cached(&kv, id)));
        apply(&mut kv, |txn| {
            evict(txn, &ctx(1_000 + RETRY_TTL_MS - 1), 10, &Limits::DEFAULT)
        })
        .expect("evict");
        assert!((1..=3).all(|id| cached(&kv, id)), "nothing has expired yet");
        apply(&mut kv, |txn| {
            evict(txn, &ctx(1_000 + RETRY_TTL_MS), 2, &Limits::DEFAULT)
        })
        .expect("evict");
        assert_eq!(
            (1..=3).map(|id| cached(&kv, id)).collect::<Vec<_>>(),
            [false, false, true],
            "the two oldest, within the budget"
        );
        // A new active whose clock is 500 ms behind.
        apply(&mut kv, |txn| {
            let t = order_time(txn, &ctx(500)).expect("time");
            assert_eq!(t, 1_001, "filed after the last evicted key");
            record(txn, t, &call(4), &Ok(OpOutput::Done), &Limits::DEFAULT).expect("record");
        });
        apply(&mut kv, |txn| {
            evict(txn, &ctx(1_000 + RETRY_TTL_MS), 10, &Limits::DEFAULT)
        })
        .expect("evict");
        assert_eq!(
            (1..=4).map(|id| cached(&kv, id)).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        apply(&mut kv, |txn| {
            evict(txn, &ctx(1_001 + RETRY_TTL_MS), 10, &Limits::DEFAULT)
        })
        .expect("evict");
        assert!(!cached(&kv, 4));
        assert_eq!(count(&Txn::new(&kv)).expect("count"), 0);
    }

    /// `call(call_id)` of `client`, run as `user`.
    fn call_as(user: &str, client: u8, call_id: u64) -> Proposal {
        Proposal {
            client: ClientId([client; 16]),
            access: Some(crate::namespace::permission::Access {
                user: user.into(),
                groups: Vec::new(),
                superuser: false,
                machine: String::new(),
            }),
            ..call(call_id)
        }
    }

    fn cached_as(kv: &MemKv, p: &Proposal) -> bool {
        lookup(&Txn::new(kv), p).expect("lookup").is_some()
    }

    /// A principal that records result after result evicts its own oldest once past its
    /// share, never another principal's; eviction by age then empties every count.
    #[test]
    fn one_principal_flooding_the_cache_evicts_only_its_own_results() {
        let limits = Limits {
            total: 10,
            per_principal: 5,
        };
        let mut kv = MemKv::new();
        let bob: Vec<Proposal> = (1..=3).map(|id| call_as("bob", 1, id)).collect();
        let mallory: Vec<Proposal> = (1..=40).map(|id| call_as("mallory", 2, id)).collect();
        apply(&mut kv, |txn| {
            for p in &bob {
                record(txn, 1_000, p, &Ok(OpOutput::Done), &limits).expect("record");
            }
        });
        for (i, p) in mallory.iter().enumerate() {
            // One entry per call, each evicting as the state machine does.
            apply(&mut kv, |txn| {
                let t = order_time(txn, &ctx(2_000 + i as u64)).expect("time");
                record(txn, t, p, &Ok(OpOutput::Done), &limits).expect("record");
                evict(txn, &ctx(2_000 + i as u64), 16, &limits).expect("evict");
            });
        }
        assert!(
            bob.iter().all(|p| cached_as(&kv, p)),
            "bob's results were evicted"
        );
        let kept: Vec<bool> = mallory.iter().map(|p| cached_as(&kv, p)).collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), 5, "{kept:?}");
        assert!(
            kept[35..].iter().all(|k| *k),
            "mallory keeps her newest: {kept:?}"
        );
        assert_eq!(count(&Txn::new(&kv)).expect("count"), 8);
        apply(&mut kv, |txn| {
            evict(txn, &ctx(3_000 + RETRY_TTL_MS), 100, &limits)
        })
        .expect("evict");
        let txn = Txn::new(&kv);
        assert_eq!(count(&txn).expect("count"), 0);
        for user in ["bob", "mallory"] {
            let tag = tag_of(&call_as(user, 0, 1)).expect("a principal");
            assert_eq!(
                counter(&txn, &meta_key(KEY_COUNT_OF, &tag)).expect("count"),
                0
            );
        }
        assert!(
            txn.scan(Cf::RetryByPrincipal, &[], None, 10)
                .expect("scan")
                .is_empty(),
            "the principals' orders are empty"
        );
    }
}
