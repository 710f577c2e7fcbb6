//! List-append histories of single-operation transactions (Elle's `list-append` with one
//! micro-operation each): `:append [k v]` adds a unique `v` to key `k`'s list, `:read [k
//! [v1 v2 ...]]` returns the whole list. Because every value is unique and lists only grow,
//! the order of a key's versions is visible in its longest read, and each anomaly has a
//! direct witness — no search is needed:
//!
//! - **incompatible order**: two reads of a key that are not prefixes of one another;
//! - **duplicate**: a value twice in one read;
//! - **garbage / aborted read**: a value no append wrote, or whose append certainly failed;
//! - **read from the future**: a value whose append began only after the read ended;
//! - **lost write / stale read**: a value visible before a read began is missing from it (the
//!   final reads, on the active after the faults, make this the durability check);
//! - **real-time order**: a value visible before another's append began comes after it in the
//!   list.
//!
//! A value is *visible* from its append's acknowledgement or the end of the first read that
//! showed it, whichever comes first: from then on every read must show it (a read that had it
//! and a later one that does not is a stale read even if the append's outcome is unknown).
//!
//! Together these are linearizability for this data type.

use std::collections::HashMap;

use edn_format::Value;

use super::Verdict;
use crate::history::{OpType, Operation};

/// What the checker found, and how much it looked at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListAppendReport {
    pub verdict: Verdict,
    pub keys: u64,
    pub reads: u64,
    pub appends: u64,
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Vector(x) | Value::List(x) => Some(x.as_slice()),
        _ => None,
    }
}

/// `[k v]` of an append, `[k [..]]` of a read.
fn key_and(v: &Value) -> Option<(i64, &Value)> {
    let [k, rest] = items(v)? else { return None };
    Some((int(k)?, rest))
}

fn describe(op: &Operation) -> String {
    format!(
        "process {} {} (index {}) -> {}",
        op.process,
        op.f,
        op.invoke,
        edn_format::emit_str(&op.value)
    )
}

/// One key's appends: value -> (invocation index, completion index if acknowledged, failed).
#[derive(Default)]
struct KeyAppends {
    by_value: HashMap<i64, (usize, Option<usize>, bool)>,
}

/// Checks a list-append history.
pub fn check(ops: &[Operation]) -> Result<ListAppendReport, String> {
    let mut appends: HashMap<i64, KeyAppends> = HashMap::new();
    let mut reads: HashMap<i64, Vec<(&Operation, Vec<i64>)>> = HashMap::new();
    let mut n_appends = 0u64;
    for op in ops {
        match op.f.as_str() {
            "append" => {
                let (k, v) = key_and(&op.invoke_value)
                    .and_then(|(k, v)| Some((k, int(v)?)))
                    .ok_or_else(|| format!("an append without [key value]: {}", describe(op)))?;
                n_appends += 1;
                let acked = (op.outcome == OpType::Ok).then_some(op.complete).flatten();
                let entry = appends.entry(k).or_default();
                if entry
                    .by_value
                    .insert(v, (op.invoke, acked, op.outcome == OpType::Fail))
                    .is_some()
                {
                    return Err(format!(
                        "value {v} appended to key {k} twice: values must be unique"
                    ));
                }
            }
            "read" => {
                if op.outcome != OpType::Ok {
                    continue;
                }
                let (k, list) = key_and(&op.value)
                    .ok_or_else(|| format!("a read without [key list]: {}", describe(op)))?;
                let list: Vec<i64> = match list {
                    Value::Nil => Vec::new(),
                    other => items(other)
                        .and_then(|x| x.iter().map(int).collect())
                        .ok_or_else(|| format!("a read of a non-list: {}", describe(op)))?,
                };
                reads.entry(k).or_default().push((op, list));
            }
            other => return Err(format!("operation {other:?} is not list-append")),
        }
    }

    let n_reads = reads.values().map(Vec::len).sum::<usize>() as u64;
    let report = |verdict| ListAppendReport {
        verdict,
        keys: appends.len().max(reads.len()) as u64,
        reads: n_reads,
        appends: n_appends,
    };
    let empty = KeyAppends::default();
    let mut keys: Vec<_> = reads.keys().copied().collect();
    keys.sort_unstable();
    for k in keys {
        let rs = &reads[&k];
        let ap = appends.get(&k).unwrap_or(&empty);
        let longest = rs
            .iter()
            .max_by_key(|(_, l)| l.len())
            .map(|(_, l)| l.clone())
            .unwrap_or_default();
        // When each value became visible: its append's acknowledgement, or the end of the
        // first read that showed it, whichever came first. From then on every read must
        // show it, and every value appended later must come after it.
        let mut visible: HashMap<i64, usize> = HashMap::new();
        for (v, (_, acked, _)) in &ap.by_value {
            if let Some(done) = acked {
                visible.insert(*v, *done);
            }
        }
        for (op, list) in rs {
            let done = op.complete.unwrap_or(usize::MAX);
            for v in list {
                let e = visible.entry(*v).or_insert(done);
                *e = (*e).min(done);
            }
        }
        for (op, list) in rs {
            let bad = |why: String| {
                report(Verdict::Invalid {
                    op: format!("{}: {why}", describe(op)),
                })
            };
            if list.len() > longest.len() || longest[..list.len()] != list[..] {
                return Ok(bad(format!(
                    "key {k}: not a prefix of another read of it {longest:?} (incompatible orders)"
                )));
            }
            let mut at: HashMap<i64, usize> = HashMap::new();
            let complete = op.complete.unwrap_or(usize::MAX);
            for (i, v) in list.iter().enumerate() {
                if at.insert(*v, i).is_some() {
                    return Ok(bad(format!("key {k}: {v} appears twice")));
                }
                match ap.by_value.get(v) {
                    None => return Ok(bad(format!("key {k}: no append of {v} to it"))),
                    Some((_, _, true)) => {
                        return Ok(bad(format!(
                            "key {k}: the append of {v} failed (aborted read)"
                        )));
                    }
                    Some((invoked, _, _)) if *invoked > complete => {
                        return Ok(bad(format!(
                            "key {k}: the append of {v} began after this read ended"
                        )));
                    }
                    Some(_) => {}
                }
            }
            for (v, seen_at) in &visible {
                if *seen_at < op.invoke && !at.contains_key(v) {
                    return Ok(bad(format!(
                        "key {k}: misses {v}, visible (index {seen_at}) before this read began (lost write or stale read)"
                    )));
                }
            }
            // Real-time order: a value visible before another's append began precedes it.
            for (b, pb) in &at {
                let Some((b_invoked, _, _)) = ap.by_value.get(b) else {
                    continue;
                };
                for (a, seen_at) in &visible {
                    if seen_at < b_invoked && at.get(a).is_none_or(|pa| pa > pb) {
                        return Ok(bad(format!(
                            "key {k}: {a} was visible (index {seen_at}) before the append of {b} began (index {b_invoked}), yet does not precede it"
                        )));
                    }
                }
            }
        }
    }
    Ok(report(Verdict::Valid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{operations, parse};

    fn verdict(h: &str) -> Verdict {
        check(&operations(&parse(h).expect("parses")).expect("pairs"))
            .expect("checks")
            .verdict
    }

    fn ev(p: i64, t: &str, f: &str, v: &str) -> String {
        format!("{{:process {p} :type :{t} :f :{f} :value {v}}}\n")
    }

    fn appended(p: i64, k: i64, v: i64) -> String {
        ev(p, "invoke", "append", &format!("[{k} {v}]"))
            + &ev(p, "ok", "append", &format!("[{k} {v}]"))
    }

    fn read(p: i64, k: i64, list: &str) -> String {
        ev(p, "invoke", "read", &format!("[{k} nil]"))
            + &ev(p, "ok", "read", &format!("[{k} {list}]"))
    }

    #[test]
    fn a_clean_history_is_valid() {
        let h = appended(0, 1, 10)
            + &read(1, 1, "[10]")
            + &appended(0, 1, 11)
            + &read(1, 1, "[10 11]")
            + &read(2, 2, "nil");
        assert!(verdict(&h).is_valid(), "{:?}", verdict(&h));
    }

    #[test]
    fn concurrent_and_unknown_appends_may_or_may_not_be_seen() {
        // The append of 11 is in flight during the first read and of unknown outcome later.
        let h = appended(0, 1, 10)
            + &ev(0, "invoke", "append", "[1 11]")
            + &read(1, 1, "[10 11]")
            + &ev(0, "info", "append", "[1 11]")
            + &read(2, 1, "[10 11]");
        assert!(verdict(&h).is_valid());
        let not_seen = appended(0, 1, 10)
            + &ev(0, "invoke", "append", "[1 11]")
            + &ev(0, "info", "append", "[1 11]")
            + &read(2, 1, "[10]");
        assert!(verdict(&not_seen).is_valid());
    }

    #[test]
    fn every_anomaly_has_its_witness() {
        let cases = [
            ("lost write", appended(0, 1, 10) + &read(1, 1, "nil")),
            (
                "incompatible orders",
                appended(0, 1, 10)
                    + &appended(0, 1, 11)
                    + &read(1, 1, "[10 11]")
                    + &read(2, 1, "[11 10]"),
            ),
            ("duplicate", appended(0, 1, 10) + &read(1, 1, "[10 10]")),
            ("garbage", read(1, 1, "[99]")),
            (
                "aborted read",
                ev(0, "invoke", "append", "[1 10]")
                    + &ev(0, "fail", "append", "[1 10]")
                    + &read(1, 1, "[10]"),
            ),
            ("future read", read(1, 1, "[10]") + &appended(0, 1, 10)),
            (
                "stale read after a read showed the value",
                ev(0, "invoke", "append", "[1 10]")
                    + &read(1, 1, "[10]")
                    + &read(2, 1, "nil")
                    + &ev(0, "info", "append", "[1 10]"),
            ),
            (
                "a value missing before a later one",
                appended(0, 1, 10) + &appended(1, 1, 11) + &read(2, 1, "[11]"),
            ),
            (
                "real-time order",
                appended(0, 1, 10) + &appended(1, 1, 11) + &read(2, 1, "[11 10]"),
            ),
        ];
        for (name, h) in cases {
            assert!(verdict(&h).is_invalid(), "{name} not found: {h}");
        }
    }
}
