//! Linearizability by the Wing–Gong–Lowe search (as Porcupine and Knossos's `:wgl` do it): walk
//! the history's calls and returns in order, try to linearize each call that is still open
//! against the model, and backtrack when a return is reached whose operation has not been
//! linearized. Configurations already explored (which operations are linearized, and the
//! model's state) are cached, which makes the search practical.
//!
//! `:fail` operations never took effect and are dropped. `:info` operations (and invocations
//! never completed) may take effect at any point after their invocation, or never: their
//! return is placed after every other event, and the search succeeds once every `:ok`
//! operation is linearized, whatever became of them.

use std::collections::HashMap;
use std::time::Instant;

use super::Verdict;
use crate::history::{OpType, Operation};
use crate::model::Model;

/// Limits of one search, after which it says `Unknown`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub deadline: Option<Instant>,
    /// Most configurations kept in the cache (memory).
    pub max_cached: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: None,
            max_cached: 20_000_000,
        }
    }
}

const HEAD: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    /// For a call, the index of its return entry.
    partner: usize,
    prev: usize,
    next: usize,
}

/// The doubly linked list of calls and returns still to be linearized.
struct Events {
    entries: Vec<Entry>,
    head: usize,
}

impl Events {
    fn new(ops: &[Operation]) -> Self {
        // (time, is a return, op): returns at the same time sort after calls, never before.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoke as u64, false, i));
            let ret = match (op.outcome, op.complete) {
                (OpType::Ok, Some(c)) => c as u64,
                _ => u64::MAX,
            };
            order.push((ret, true, i));
        }
        order.sort_unstable();
        let mut call_at = vec![0usize; ops.len()];
        let mut ret_at = vec![0usize; ops.len()];
        let n = order.len();
        let entries: Vec<Entry> = order
            .iter()
            .enumerate()
            .map(|(pos, (_, is_ret, op))| {
                if *is_ret {
                    ret_at[*op] = pos;
                } else {
                    call_at[*op] = pos;
                }
                Entry {
                    op: *op,
                    is_call: !*is_ret,
                    partner: 0,
                    prev: if pos == 0 { HEAD } else { pos - 1 },
                    next: if pos + 1 == n { HEAD } else { pos + 1 },
                }
            })
            .collect();
        let mut events = Events {
            entries,
            head: if n == 0 { HEAD } else { 0 },
        };
        for (op, call) in call_at.iter().enumerate() {
            events.entries[*call].partner = ret_at[op];
        }
        events
    }

    fn unlink(&mut self, i: usize) {
        let Entry { prev, next, .. } = self.entries[i];
        if prev == HEAD {
            self.head = next;
        } else {
            self.entries[prev].next = next;
        }
        if next != HEAD {
            self.entries[next].prev = prev;
        }
    }

    fn relink(&mut self, i: usize) {
        let Entry { prev, next, .. } = self.entries[i];
        if prev == HEAD {
            self.head = i;
        } else {
            self.entries[prev].next = i;
        }
        if next != HEAD {
            self.entries[next].prev = i;
        }
    }

    /// Removes a call and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.entries[call].partner);
    }

    /// Undoes [`Events::lift`] (in reverse order, so the links come back exactly).
    fn unlift(&mut self, call: usize) {
        self.relink(self.entries[call].partner);
        self.relink(call);
    }
}

/// A set of operations, as bits.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Checks `ops` (one history, one object) against `model`.
pub fn check<M: Model>(model: &M, ops: &[Operation], limits: Limits) -> Verdict {
    let ops: Vec<Operation> = ops
        .iter()
        .filter(|o| o.outcome != OpType::Fail)
        .cloned()
        .collect();
    let mut remaining_ok = ops.iter().filter(|o| o.outcome == OpType::Ok).count();
    let mut events = Events::new(&ops);
    let mut linearized = Bits::new(ops.len());
    // Explored configurations: for each set of linearized operations, the states reached.
    let mut cache: HashMap<Bits, Vec<M::State>> = HashMap::new();
    let mut cached = 0usize;
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut at = events.head;
    // The furthest the search got, and the operation it could not linearize there.
    let mut deepest: (usize, Option<usize>) = (0, None);
    let mut steps: u64 = 0;
    loop {
        if remaining_ok == 0 {
            return Verdict::Valid;
        }
        steps += 1;
        if steps.is_multiple_of(4096) && limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Verdict::Unknown {
                reason: format!("time limit reached after {steps} steps"),
            };
        }
        if at == HEAD {
            // Only returns of operations that may never have happened are left.
            return Verdict::Valid;
        }
        let e = events.entries[at];
        if e.is_call {
            let op = &ops[e.op];
            if let Some(next_state) = model.step(&state, op) {
                let mut with = linearized.clone();
                with.set(e.op);
                if cached >= limits.max_cached {
                    return Verdict::Unknown {
                        reason: format!("{cached} configurations explored: memory limit"),
                    };
                }
                let seen = cache.entry(with.clone()).or_default();
                if !seen.contains(&next_state) {
                    seen.push(next_state.clone());
                    cached += 1;
                    stack.push((at, std::mem::replace(&mut state, next_state)));
                    linearized = with;
                    if op.outcome == OpType::Ok {
                        remaining_ok -= 1;
                    }
                    events.lift(at);
                    at = events.head;
                    continue;
                }
            }
            at = e.next;
        } else {
            // The return of an operation not linearized yet: undo the last choice.
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), Some(e.op));
            }
            let Some((call, previous)) = stack.pop() else {
                let op = deepest.1.map(|i| ops[i].clone());
                return Verdict::Invalid {
                    op: op.map(|o| describe(&o)).unwrap_or_default(),
                };
            };
            let op = events.entries[call].op;
            state = previous;
            linearized.clear(op);
            if ops[op].outcome == OpType::Ok {
                remaining_ok += 1;
            }
            events.unlift(call);
            at = events.entries[call].next;
        }
    }
}

fn describe(op: &Operation) -> String {
    format!(
        "process {} {} {} (invoked at {}, completed at {}) cannot be linearized",
        op.process,
        op.f,
        edn_format::emit_str(&op.value),
        op.invoke,
        op.complete.map_or("never".into(), |c| c.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{operations, parse};
    use crate::model::CasRegister;

    fn verdict(text: &str) -> Verdict {
        let ops = operations(&parse(text).expect("parses")).expect("pairs");
        check(&CasRegister::default(), &ops, Limits::default())
    }

    #[test]
    fn sequential_histories() {
        assert!(verdict("[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :ok :f :write :value 1} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 1}]").is_valid());
        // Stale read: 0 after a completed write of 1.
        assert!(verdict("[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :ok :f :write :value 1} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 0}]").is_invalid());
        // Read from the future: 1 before the write of 1 was invoked.
        assert!(verdict("[{:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 1} {:process 0 :type :invoke :f :write :value 1} {:process 0 :type :ok :f :write :value 1}]").is_invalid());
    }

    #[test]
    fn concurrent_operations_may_reorder() {
        // The read overlaps the write: it may see either value.
        for seen in [0, 1] {
            let h = format!(
                "[{{:process 0 :type :invoke :f :write :value 1}} {{:process 1 :type :invoke :f :read :value nil}} {{:process 1 :type :ok :f :read :value {seen}}} {{:process 0 :type :ok :f :write :value 1}}]"
            );
            assert!(verdict(&h).is_valid(), "{h}");
        }
        // Two overlapping reads see 1 then 0 while the write of 1 is in flight: the write
        // cannot be undone, so reads in real-time order 1 then 0 are not linearizable.
        assert!(verdict("[{:process 0 :type :invoke :f :write :value 1} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 1} {:process 2 :type :invoke :f :read :value nil} {:process 2 :type :ok :f :read :value 0} {:process 0 :type :ok :f :write :value 1}]").is_invalid());
    }

    #[test]
    fn info_and_fail_operations() {
        // A crashed write may have happened later: a read of its value after it is fine ...
        assert!(verdict("[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :info :f :write :value 1} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 1}]").is_valid());
        // ... or never: a read of the old value is fine too.
        assert!(verdict("[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :info :f :write :value 1} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 0}]").is_valid());
        // But not both, in this order: once seen, it cannot un-happen.
        assert!(verdict("[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :info :f :write :value 1} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 1} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 0}]").is_invalid());
        // A failed write never happened: seeing its value is a violation (a lost-then-found write).
        assert!(verdict("[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :fail :f :write :value 1} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 1}]").is_invalid());
        // Lost write: acknowledged, then gone.
        assert!(verdict("[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :ok :f :write :value 1} {:process 0 :type :invoke :f :cas :value [1 2]} {:process 0 :type :fail :f :cas :value [1 2]}]").is_valid());
        assert!(verdict("[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :ok :f :write :value 1} {:process 1 :type :invoke :f :cas :value [0 2]} {:process 1 :type :ok :f :cas :value [0 2]}]").is_invalid());
    }

    #[test]
    fn time_limit_says_unknown() {
        let ops = operations(&parse("[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :ok :f :write :value 1}]").expect("parses")).expect("pairs");
        let past = Limits {
            deadline: Some(Instant::now()),
            max_cached: 1,
        };
        // One configuration fills the cache: the search may not go on, so it cannot say valid.
        let v = check(
            &CasRegister::default(),
            &ops,
            Limits {
                max_cached: 0,
                ..past
            },
        );
        assert!(matches!(v, Verdict::Unknown { .. }), "{v:?}");
    }
}
