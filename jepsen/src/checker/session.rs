//! Session guarantees of reads that observers may answer (DESIGN §5), for histories in which
//! every key has one writer whose values go up (1, 2, 3, ...; an absent value reads as 0), as
//! the `rw-observer` workload records them:
//!
//! - **read-your-own-writes**: after a process's write of `v` completed, its reads of that key
//!   return at least `v`;
//! - **monotonic reads**: a process never reads a value older than one it read before;
//! - **third-party communication**: a read invoked as `[k m]` (`:read-token`, after the client
//!   took another's state ID; `:read-msync`, after an msync that began once the write of `m`
//!   had completed) returns at least `m`;
//! - **no read from the future**: a read returns only a value whose write was invoked before
//!   the read completed;
//! - **durability**: the final reads (`:final-read`, on the active after every fault healed)
//!   return at least every value whose write completed.
//!
//! A process is sequential (one operation at a time), so "after" is the order of its
//! operations. Every verdict names the first anomaly it found.

use std::collections::HashMap;

use edn_format::Value;

use super::Verdict;
use crate::history::{OpType, Operation};

/// What every guarantee concluded, and how much was checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionReport {
    pub read_your_own_writes: Verdict,
    pub monotonic_reads: Verdict,
    pub third_party: Verdict,
    pub no_future_reads: Verdict,
    pub durability: Verdict,
    /// Successful reads checked (final reads included).
    pub reads: u64,
}

impl SessionReport {
    /// All five guarantees together.
    pub fn overall(&self) -> Verdict {
        Verdict::all([
            self.read_your_own_writes.clone(),
            self.monotonic_reads.clone(),
            self.third_party.clone(),
            self.no_future_reads.clone(),
            self.durability.clone(),
        ])
    }
}

/// `[k v]` with `v` an integer or nil (0).
fn key_value(v: &Value) -> Option<(i64, i64)> {
    let items: Vec<&Value> = match v {
        Value::Vector(x) => x.iter().collect(),
        Value::List(x) => x.iter().collect(),
        _ => return None,
    };
    let [Value::Integer(k), v] = items.as_slice() else {
        return None;
    };
    match v {
        Value::Integer(v) => Some((*k, *v)),
        Value::Nil => Some((*k, 0)),
        _ => None,
    }
}

fn describe(op: &Operation) -> String {
    format!(
        "process {} {} invoked at index {} -> {}",
        op.process,
        op.f,
        op.invoke,
        edn_format::emit_str(&op.value)
    )
}

/// The first anomaly of one kind, if any.
#[derive(Default)]
struct First(Option<String>);

impl First {
    fn note(&mut self, why: impl FnOnce() -> String) {
        if self.0.is_none() {
            self.0 = Some(why());
        }
    }
    fn verdict(self) -> Verdict {
        match self.0 {
            Some(op) => Verdict::Invalid { op },
            None => Verdict::Valid,
        }
    }
}

/// Checks a history of `write`, `read`, `read-token`, `read-msync` and `final-read`
/// operations (values `[key value]`). Operations it does not know are refused.
pub fn check(ops: &[Operation]) -> Result<SessionReport, String> {
    // When each value of each key was first invoked, and the largest completed write.
    let mut invoked_at: HashMap<(i64, i64), usize> = HashMap::new();
    let mut acked: HashMap<i64, (i64, usize)> = HashMap::new();
    for op in ops {
        if op.f != "write" {
            continue;
        }
        let (k, v) = key_value(&op.invoke_value)
            .ok_or_else(|| format!("a write without [key value]: {}", describe(op)))?;
        invoked_at.entry((k, v)).or_insert(op.invoke);
        if op.outcome == OpType::Ok {
            let e = acked.entry(k).or_insert((0, 0));
            if v > e.0 {
                *e = (v, op.invoke);
            }
        }
    }

    let mut by_process: HashMap<i64, Vec<&Operation>> = HashMap::new();
    for op in ops {
        by_process.entry(op.process).or_default().push(op);
    }
    let (mut ryow, mut mono, mut third, mut future, mut durable) = (
        First::default(),
        First::default(),
        First::default(),
        First::default(),
        First::default(),
    );
    let mut reads = 0u64;
    let mut processes: Vec<_> = by_process.into_iter().collect();
    processes.sort_by_key(|(p, _)| *p);
    for (_, mut list) in processes {
        list.sort_by_key(|o| o.invoke);
        let mut own: HashMap<i64, (i64, usize)> = HashMap::new();
        let mut seen: HashMap<i64, (i64, usize)> = HashMap::new();
        for op in list {
            match op.f.as_str() {
                "write" => {
                    if op.outcome == OpType::Ok
                        && let Some((k, v)) = key_value(&op.invoke_value)
                    {
                        let e = own.entry(k).or_insert((0, 0));
                        if v > e.0 {
                            *e = (v, op.invoke);
                        }
                    }
                }
                "read" | "read-token" | "read-msync" | "final-read" => {
                    if op.outcome != OpType::Ok {
                        continue;
                    }
                    let (k, v) = key_value(&op.value)
                        .ok_or_else(|| format!("a read without [key value]: {}", describe(op)))?;
                    reads += 1;
                    let complete = op.complete.unwrap_or(usize::MAX);
                    if v != 0 && invoked_at.get(&(k, v)).is_none_or(|i| *i > complete) {
                        future.note(|| {
                            format!("{}: no write of {v} to key {k} began before", describe(op))
                        });
                    }
                    if let Some((w, at)) = own.get(&k)
                        && v < *w
                    {
                        ryow.note(|| {
                            format!(
                                "{}: the same process wrote {w} (index {at}) before",
                                describe(op)
                            )
                        });
                    }
                    if let Some((r, at)) = seen.get(&k)
                        && v < *r
                    {
                        mono.note(|| {
                            format!(
                                "{}: the same process read {r} (index {at}) before",
                                describe(op)
                            )
                        });
                    }
                    let e = seen.entry(k).or_insert((0, 0));
                    if v > e.0 {
                        *e = (v, op.invoke);
                    }
                    if op.f == "read-token" || op.f == "read-msync" {
                        let (_, m) = key_value(&op.invoke_value).ok_or_else(|| {
                            format!(
                                "a third-party read without [key at-least]: {}",
                                describe(op)
                            )
                        })?;
                        if v < m {
                            third.note(|| {
                                format!("{}: another process's write of {m} had completed and was handed over", describe(op))
                            });
                        }
                    }
                    if op.f == "final-read"
                        && let Some((w, at)) = acked.get(&k)
                        && v < *w
                    {
                        durable.note(|| {
                            format!(
                                "{}: the write of {w} (index {at}) was acknowledged",
                                describe(op)
                            )
                        });
                    }
                }
                other => return Err(format!("operation {other:?} is not a session operation")),
            }
        }
    }
    Ok(SessionReport {
        read_your_own_writes: ryow.verdict(),
        monotonic_reads: mono.verdict(),
        third_party: third.verdict(),
        no_future_reads: future.verdict(),
        durability: durable.verdict(),
        reads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{operations, parse};

    fn report(text: &str) -> SessionReport {
        check(&operations(&parse(text).expect("parses")).expect("pairs")).expect("checks")
    }

    fn ev(p: i64, t: &str, f: &str, v: &str) -> String {
        format!("{{:process {p} :type :{t} :f :{f} :value {v}}}\n")
    }

    /// Process 0 writes key 0 up to 2; `tail` follows.
    fn with_writes(tail: &str) -> String {
        let mut h = String::new();
        for v in 1..=2 {
            h += &ev(0, "invoke", "write", &format!("[0 {v}]"));
            h += &ev(0, "ok", "write", &format!("[0 {v}]"));
        }
        h + tail
    }

    #[test]
    fn a_clean_history_passes_every_guarantee() {
        let h = with_writes(
            &(ev(0, "invoke", "read", "[0 nil]")
                + &ev(1, "invoke", "read", "[0 nil]")
                + &ev(0, "ok", "read", "[0 2]")
                + &ev(1, "ok", "read", "[0 1]")
                + &ev(1, "invoke", "read-token", "[0 2]")
                + &ev(1, "ok", "read-token", "[0 2]")
                + &ev(2, "invoke", "final-read", "[0 nil]")
                + &ev(2, "ok", "final-read", "[0 2]")),
        );
        let r = report(&h);
        assert!(r.overall().is_valid(), "{r:?}");
        assert_eq!(r.reads, 4);
    }

    #[test]
    fn a_stale_read_of_ones_own_write_is_caught() {
        let h = with_writes(&(ev(0, "invoke", "read", "[0 nil]") + &ev(0, "ok", "read", "[0 1]")));
        let r = report(&h);
        assert!(r.read_your_own_writes.is_invalid(), "{r:?}");
        assert!(r.monotonic_reads.is_valid());
    }

    #[test]
    fn a_read_going_back_in_time_is_caught() {
        let h = with_writes(
            &(ev(1, "invoke", "read", "[0 nil]")
                + &ev(1, "ok", "read", "[0 2]")
                + &ev(1, "invoke", "read", "[0 nil]")
                + &ev(1, "ok", "read", "[0 1]")),
        );
        let r = report(&h);
        assert!(r.monotonic_reads.is_invalid(), "{r:?}");
        assert!(r.read_your_own_writes.is_valid());
    }

    #[test]
    fn a_token_or_msync_that_does_not_carry_the_write_is_caught() {
        for f in ["read-token", "read-msync"] {
            let h = with_writes(&(ev(1, "invoke", f, "[0 2]") + &ev(1, "ok", f, "[0 1]")));
            let r = report(&h);
            assert!(r.third_party.is_invalid(), "{f}: {r:?}");
        }
    }

    #[test]
    fn a_read_from_the_future_is_caught_but_a_concurrent_write_may_be_seen() {
        // The read completes before the write of 3 is invoked.
        let early = with_writes(
            &(ev(1, "invoke", "read", "[0 nil]")
                + &ev(1, "ok", "read", "[0 3]")
                + &ev(0, "invoke", "write", "[0 3]")
                + &ev(0, "ok", "write", "[0 3]")),
        );
        assert!(report(&early).no_future_reads.is_invalid());
        // Overlapping: the write of 3 is in flight (even of unknown outcome) while the read runs.
        let overlapping = with_writes(
            &(ev(1, "invoke", "read", "[0 nil]")
                + &ev(0, "invoke", "write", "[0 3]")
                + &ev(1, "ok", "read", "[0 3]")
                + &ev(0, "info", "write", "[0 3]")),
        );
        assert!(report(&overlapping).overall().is_valid());
        // A value never written at all.
        let never =
            with_writes(&(ev(1, "invoke", "read", "[0 nil]") + &ev(1, "ok", "read", "[0 9]")));
        assert!(report(&never).no_future_reads.is_invalid());
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught_and_an_unknown_one_is_not_required() {
        let lost = with_writes(
            &(ev(5, "invoke", "final-read", "[0 nil]") + &ev(5, "ok", "final-read", "[0 1]")),
        );
        assert!(report(&lost).durability.is_invalid());
        // The write of 3 timed out (:info): the final read may or may not see it.
        let unknown = with_writes(
            &(ev(0, "invoke", "write", "[0 3]")
                + &ev(0, "info", "write", "[0 3]")
                + &ev(5, "invoke", "final-read", "[0 nil]")
                + &ev(5, "ok", "final-read", "[0 2]")),
        );
        assert!(report(&unknown).overall().is_valid());
    }

    #[test]
    fn failed_reads_constrain_nothing_and_unknown_ops_are_refused() {
        let h =
            with_writes(&(ev(0, "invoke", "read", "[0 nil]") + &ev(0, "fail", "read", "[0 nil]")));
        assert!(report(&h).overall().is_valid());
        let ops = operations(
            &parse(&(ev(0, "invoke", "cas", "[0 [1 2]]") + &ev(0, "ok", "cas", "[0 [1 2]]")))
                .expect("parses"),
        )
        .expect("pairs");
        assert!(check(&ops).is_err());
    }
}
