//! Generated histories for the checkers' stress set: concurrent processes on one
//! compare-and-set register that is linearizable by construction, with many indeterminate
//! (`:info`) operations, which is what makes a linearizability search blow up.
//!
//! The register is simulated: every operation takes effect at one moment between its
//! invocation and its completion (its linearization point), so the history is valid. An
//! operation whose process "crashes" completes `:info` and takes effect before that, later
//! (a request still in flight), or never; as in Jepsen, the crashed process is replaced by a
//! new one (`process + processes`), so the concurrency stays the same. [`corrupt`] then makes
//! a history invalid by changing what one read saw to a value never written.

use edn_format::Value;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Event, OpType};

/// The shape of a generated history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Operations invoked.
    pub ops: usize,
    /// Processes running at once.
    pub processes: usize,
    /// Share of the writes and compare-and-sets whose process crashes (`:info`).
    pub crash_ratio: f64,
    /// Values are drawn from `0..values`: few values, many operations that look alike.
    pub values: i64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            ops: 300,
            processes: 9,
            crash_ratio: 0.1,
            values: 5,
        }
    }
}

/// An operation invoked and not yet completed.
#[derive(Debug, Clone)]
struct Pending {
    f: &'static str,
    asked: Value,
    /// What it returned once it took effect (`None`: not yet).
    result: Option<(OpType, Value)>,
    crashes: bool,
}

/// The register every operation takes effect on.
#[derive(Debug)]
struct Register(i64);

impl Register {
    /// Takes `op` into effect now: what its completion reports.
    fn apply(&mut self, op: &Pending) -> (OpType, Value) {
        match (op.f, &op.asked) {
            ("write", Value::Integer(v)) => {
                self.0 = *v;
                (OpType::Ok, op.asked.clone())
            }
            ("cas", Value::Vector(pair)) => match pair.as_slice() {
                [Value::Integer(old), Value::Integer(new)] if *old == self.0 => {
                    self.0 = *new;
                    (OpType::Ok, op.asked.clone())
                }
                _ => (OpType::Fail, op.asked.clone()),
            },
            _ => (OpType::Ok, Value::Integer(self.0)),
        }
    }
}

/// A valid history of `shape`, the same for the same `seed`; the register starts at 0.
pub fn cas_register(seed: u64, shape: Shape) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut register = Register(0);
    let mut slots: Vec<(i64, Option<Pending>)> =
        (0..shape.processes as i64).map(|p| (p, None)).collect();
    // Crashed operations still in flight: they take effect at some later moment, or never.
    let mut in_flight: Vec<Pending> = Vec::new();
    let mut events = Vec::new();
    let mut invoked = 0;
    let push = |events: &mut Vec<Event>, process, kind, f: &str, value| {
        events.push(Event {
            index: events.len(),
            process,
            kind,
            f: f.to_owned(),
            value,
        });
    };
    while invoked < shape.ops || slots.iter().any(|(_, p)| p.is_some()) {
        if !in_flight.is_empty() && rng.random_bool(0.05) {
            let late = in_flight.swap_remove(rng.random_range(0..in_flight.len()));
            register.apply(&late);
        }
        let slot = rng.random_range(0..slots.len());
        let (process, pending) = &mut slots[slot];
        match pending {
            None if invoked < shape.ops => {
                let op = invent(&mut rng, &register, shape);
                push(
                    &mut events,
                    *process,
                    OpType::Invoke,
                    op.f,
                    op.asked.clone(),
                );
                invoked += 1;
                *pending = Some(op);
            }
            None => {}
            Some(op) if op.result.is_none() && !(op.crashes && rng.random_bool(0.5)) => {
                op.result = Some(register.apply(op));
            }
            Some(op) if op.crashes => {
                push(&mut events, *process, OpType::Info, op.f, op.asked.clone());
                if op.result.is_none() && rng.random_bool(0.6) {
                    in_flight.push(op.clone());
                }
                *process += shape.processes as i64;
                *pending = None;
            }
            Some(op) => {
                let (kind, value) = op.result.clone().unwrap_or((OpType::Info, Value::Nil));
                push(&mut events, *process, kind, op.f, value);
                *pending = None;
            }
        }
    }
    events
}

/// A new operation: reads, writes and compare-and-sets in equal shares; half of the
/// compare-and-sets expect the register's current value, so that some succeed.
fn invent(rng: &mut StdRng, register: &Register, shape: Shape) -> Pending {
    let value = |rng: &mut StdRng| Value::Integer(rng.random_range(0..shape.values.max(1)));
    let (f, asked) = match rng.random_range(0..3) {
        0 => ("read", Value::Nil),
        1 => ("write", value(rng)),
        _ => {
            let old = if rng.random_bool(0.5) {
                Value::Integer(register.0)
            } else {
                value(rng)
            };
            ("cas", Value::Vector(vec![old, value(rng)]))
        }
    };
    Pending {
        crashes: f != "read" && rng.random_bool(shape.crash_ratio),
        f,
        asked,
        result: None,
    }
}

/// Makes `events` invalid: one `:ok` read (chosen by `seed`) saw a value nothing ever wrote.
/// `None` when the history has no read.
pub fn corrupt(events: &mut [Event], seed: u64, shape: Shape) -> Option<usize> {
    let reads: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == OpType::Ok && e.f == "read")
        .map(|(i, _)| i)
        .collect();
    if reads.is_empty() {
        return None;
    }
    let at = reads[StdRng::seed_from_u64(seed).random_range(0..reads.len())];
    events[at].value = Value::Integer(shape.values + 1000);
    Some(at)
}

/// `events` as Jepsen's `history.edn`: one map per line.
pub fn to_edn(events: &[Event]) -> String {
    use crate::run::recorder::kw;
    let mut out = String::new();
    for e in events {
        let map = Value::Map(
            [
                (kw("index"), Value::Integer(e.index as i64)),
                (kw("type"), kw(e.kind.name())),
                (kw("process"), Value::Integer(e.process)),
                (kw("f"), kw(&e.f)),
                (kw("value"), e.value.clone()),
            ]
            .into_iter()
            .collect(),
        );
        out.push_str(&edn_format::emit_str(&map));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{operations, parse};

    #[test]
    fn a_history_is_the_same_for_a_seed_and_reads_back() {
        let shape = Shape::default();
        let a = cas_register(7, shape);
        assert_eq!(to_edn(&a), to_edn(&cas_register(7, shape)));
        assert_ne!(to_edn(&a), to_edn(&cas_register(8, shape)));
        let ops = operations(&parse(&to_edn(&a)).expect("parses")).expect("pairs");
        assert_eq!(ops.len(), shape.ops);
        let info = ops.iter().filter(|o| o.outcome == OpType::Info).count();
        assert!(info > 5, "{info} indeterminate operations");
    }
}
