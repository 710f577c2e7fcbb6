//! Linearizability: is there an order of the operations, each placed between its invocation
//! and its completion, in which the model gives every `:ok` operation the result it reported?
//!
//! The search (after Wing & Gong and Lowe, as Knossos's `:wgl` and Porcupine) explores
//! *configurations*: which operations are linearized so far, and the model's state. From one,
//! an operation may be linearized next if it is invoked before the first completion of an
//! `:ok` operation not yet linearized (the *barrier*); configurations already explored are
//! not explored again.
//!
//! `:fail` operations never took effect and are dropped. `:info` operations (and invocations
//! never completed) may take effect at any point after their invocation, or never: they never
//! form a barrier, and the search succeeds once every `:ok` operation is linearized. They are
//! what makes the search blow up: every subset of them linearized is a configuration of its
//! own. Two things keep it small:
//!
//! - **Dominance.** A configuration with the same `:ok` operations linearized and the same
//!   state as another, but a subset of its indeterminate ones, can do whatever the other can
//!   (an indeterminate operation may simply never take effect, and which calls may go next
//!   depends only on the `:ok` operations). A configuration dominated by one already seen is
//!   not explored.
//! - **Order.** Configurations are explored by how many indeterminate operations they
//!   linearized, fewest first (depth first within that number, so a valid history is found
//!   quickly). So a configuration is explored after every one that dominates it, and only
//!   when none does. A plain depth-first search meets the dominated ones first: on
//!   generated histories with twenty indeterminate operations, it explored a few hundred
//!   times more configurations than it kept, and took seconds where this takes milliseconds.
//!
//! Alike indeterminate operations (same function, values and outcome), once both are
//! invoked, stay callable for good: only the first not yet linearized of them is tried.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use smallvec::SmallVec;

use super::Verdict;
use crate::history::{OpType, Operation};
use crate::model::Model;

/// Limits of one search, after which it says `Unknown`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub deadline: Option<Instant>,
    /// Most configurations kept (memory).
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

/// A set of operations, as bits: inline up to 256 operations, so that comparing the sets
/// the search keeps (its hot loop) does not chase a pointer per set.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(SmallVec<[u64; 4]>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(smallvec::smallvec![0; n.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// The first index not in the set, below `n`.
    fn first_clear(&self, n: usize) -> Option<usize> {
        self.0
            .iter()
            .enumerate()
            .find(|(_, w)| **w != u64::MAX)
            .map(|(i, w)| i * 64 + w.trailing_ones() as usize)
            .filter(|i| *i < n)
    }
    fn is_subset_of(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }
}

/// What a search cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Configurations (linearized operations, model state) explored.
    pub configurations: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Cost {
    /// The cost of two searches together (the keys of a `kv` history).
    pub fn plus(self, other: Cost) -> Cost {
        Cost {
            configurations: self.configurations + other.configurations,
            seconds: self.seconds + other.seconds,
        }
    }
}

/// A verdict and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub verdict: Verdict,
    pub cost: Cost,
}

/// The history as the search reads it: the `:ok` operations numbered in the order of their
/// completions (so the barrier is the first one not linearized), the indeterminate ones in
/// the order of their invocations.
struct Prepared {
    ok: Vec<Operation>,
    info: Vec<Operation>,
    /// For each `:ok` operation as the barrier: the `:ok` operations after it (in completion
    /// order) invoked before it completes, which may go before it.
    open_at: Vec<Vec<usize>>,
    /// For each `:ok` operation as the barrier: how many indeterminate operations are
    /// invoked before it completes (a prefix of `info`).
    info_before: Vec<usize>,
    /// A number per indeterminate operation, the same for alike ones.
    kind: Vec<usize>,
}

impl Prepared {
    fn new<M: Model>(model: &M, ops: &[Operation]) -> Self {
        let mut ok: Vec<Operation> = ops
            .iter()
            .filter(|o| o.outcome == OpType::Ok)
            .cloned()
            .collect();
        ok.sort_by_key(|o| o.complete.unwrap_or(usize::MAX));
        // Failed operations never happened; indeterminate ones that change nothing (a read
        // without an answer) cannot matter.
        let mut info: Vec<Operation> = ops
            .iter()
            .filter(|o| {
                matches!(o.outcome, OpType::Info | OpType::Invoke) && !model.inert_unless_ok(o)
            })
            .cloned()
            .collect();
        info.sort_by_key(|o| o.invoke);
        let done = |o: &Operation| o.complete.unwrap_or(usize::MAX);
        let open_at = (0..ok.len())
            .map(|b| {
                (b + 1..ok.len())
                    .filter(|j| ok[*j].invoke < done(&ok[b]))
                    .collect()
            })
            .collect();
        let info_before = ok
            .iter()
            .map(|b| info.partition_point(|i| i.invoke < done(b)))
            .collect();
        let mut kinds: Vec<usize> = Vec::new();
        let kind = (0..info.len())
            .map(
                |i| match kinds.iter().position(|k| alike(&info[*k], &info[i])) {
                    Some(k) => k,
                    None => {
                        kinds.push(i);
                        kinds.len() - 1
                    }
                },
            )
            .collect();
        Prepared {
            ok,
            info,
            open_at,
            info_before,
            kind,
        }
    }
}

fn alike(a: &Operation, b: &Operation) -> bool {
    a.f == b.f && a.invoke_value == b.invoke_value && a.value == b.value && a.outcome == b.outcome
}

/// Which operations are linearized, and the model's state after them.
#[derive(Clone)]
struct Config<S> {
    ok: Bits,
    info: Bits,
    state: S,
    /// Its number in [`Seen`], once recorded there.
    id: usize,
}

/// An operation that may be linearized next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Ok(usize),
    Info(usize),
}

impl<S> Config<S> {
    /// The first `:ok` operation (in completion order) not linearized: everything linearized
    /// next must be invoked before it completes. `None`: all are.
    fn barrier(&self, h: &Prepared) -> Option<usize> {
        self.ok.first_clear(h.ok.len())
    }

    /// The calls that may be linearized next, before barrier `b`: the barrier itself, the
    /// `:ok` operations open at its completion, and the first of each kind of the
    /// indeterminate operations invoked by then.
    fn calls(&self, h: &Prepared, b: usize) -> Vec<Call> {
        let mut calls = vec![Call::Ok(b)];
        calls.extend(
            h.open_at[b]
                .iter()
                .filter(|j| !self.ok.get(**j))
                .map(|j| Call::Ok(*j)),
        );
        let mut kinds_seen: Vec<usize> = Vec::new();
        for i in 0..h.info_before[b] {
            if !self.info.get(i) && !kinds_seen.contains(&h.kind[i]) {
                kinds_seen.push(h.kind[i]);
                calls.push(Call::Info(i));
            }
        }
        calls
    }
}

/// Sets of indeterminate operations none of which contains another, each with the number of
/// its configuration.
type Antichain = Vec<(Bits, usize)>;

/// The configurations seen: for each set of `:ok` operations linearized, each state reached
/// with it, and the (minimal) sets of indeterminate operations linearized on the way.
struct Seen<S> {
    by_ok: HashMap<Bits, Vec<(S, Antichain)>>,
    /// By number: whether a configuration was dropped, dominated by one seen after it.
    dominated: Vec<bool>,
}

impl<S: Eq + Clone> Seen<S> {
    fn new() -> Self {
        Seen {
            by_ok: HashMap::new(),
            dominated: Vec::new(),
        }
    }

    fn sets(&mut self, ok: &Bits, state: &S) -> &mut Antichain {
        let states = self.by_ok.entry(ok.clone()).or_default();
        let at = match states.iter().position(|(s, _)| s == state) {
            Some(at) => at,
            None => {
                states.push((state.clone(), Vec::new()));
                states.len() - 1
            }
        };
        &mut states[at].1
    }

    /// Records a configuration and numbers it; `false` when it, or one that dominates it,
    /// was seen already.
    fn insert(&mut self, c: &mut Config<S>) -> bool {
        let id = self.dominated.len();
        let sets = self.sets(&c.ok, &c.state);
        if sets.iter().any(|(seen, _)| seen.is_subset_of(&c.info)) {
            return false;
        }
        // Those it dominates need not be kept, nor explored: whatever they would prune or
        // reach, it does.
        let mut dropped = Vec::new();
        sets.retain(|(seen, id)| {
            let keep = !c.info.is_subset_of(seen);
            if !keep {
                dropped.push(*id);
            }
            keep
        });
        sets.push((c.info.clone(), id));
        self.dominated.push(false);
        for d in dropped {
            self.dominated[d] = true;
        }
        c.id = id;
        true
    }

    /// Whether `c` was dominated by a configuration seen after it was queued.
    fn is_dominated(&self, c: &Config<S>) -> bool {
        self.dominated.get(c.id).copied().unwrap_or(false)
    }
}

/// The furthest the search got: the configuration with the most `:ok` operations linearized.
struct Furthest {
    linearized: usize,
    blocked: usize,
    state: String,
    calls: Vec<Call>,
}

/// Checks `ops` (one history, one object) against `model`.
pub fn check<M: Model>(model: &M, ops: &[Operation], limits: Limits) -> Verdict {
    search(model, ops, limits).verdict
}

/// [`check`], with what the search cost.
pub fn search<M: Model>(model: &M, ops: &[Operation], limits: Limits) -> Search {
    let started = Instant::now();
    let mut configurations = 0;
    let h = Prepared::new(model, ops);
    let verdict = explore(
        model,
        &h,
        limits,
        &mut configurations,
        Some(DEPTH_FIRST_BUDGET),
    )
    .or_else(|| explore(model, &h, limits, &mut configurations, None))
    .unwrap_or_else(|| Verdict::Unknown {
        reason: "no search order left".into(),
    });
    Search {
        verdict,
        cost: Cost {
            configurations,
            seconds: started.elapsed().as_secs_f64(),
        },
    }
}

/// How many configurations the depth-first search may explore before the search starts over
/// fewest-indeterminate-first: a valid history is usually found within a few hundred.
const DEPTH_FIRST_BUDGET: u64 = 20_000;

/// One search: depth first, `:ok` operations before indeterminate ones, giving up (`None`)
/// after `depth_first` configurations; or, without it, fewest indeterminate operations first.
fn explore<M: Model>(
    model: &M,
    h: &Prepared,
    limits: Limits,
    explored: &mut u64,
    depth_first: Option<u64>,
) -> Option<Verdict> {
    let budget_end = depth_first.map(|b| *explored + b);
    let mut root = Config {
        ok: Bits::new(h.ok.len()),
        info: Bits::new(h.info.len()),
        state: model.init(),
        id: 0,
    };
    let mut seen = Seen::new();
    seen.insert(&mut root);
    // `layers[k]`: configurations with k indeterminate operations linearized, to explore.
    let mut layers: Vec<Vec<Config<M::State>>> = vec![vec![root]];
    let mut furthest: Option<Furthest> = None;
    let mut layer = 0;
    while layer < layers.len() {
        let Some(c) = layers[layer].pop() else {
            layer += 1;
            continue;
        };
        if seen.is_dominated(&c) {
            continue;
        }
        *explored += 1;
        if explored.is_multiple_of(4096) && limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(Verdict::Unknown {
                reason: format!("time limit reached after {explored} configurations"),
            });
        }
        if budget_end.is_some_and(|end| *explored > end) {
            return None;
        }
        let Some(b) = c.barrier(h) else {
            return Some(Verdict::Valid);
        };
        let calls = c.calls(h, b);
        let linearized = c.ok.count();
        if furthest.as_ref().is_none_or(|f| linearized > f.linearized) {
            furthest = Some(Furthest {
                linearized,
                blocked: b,
                state: format!("{:?}", c.state),
                calls: calls.clone(),
            });
        }
        let steps = successors(model, h, &c.state, calls);
        // Depth first, the last pushed is explored first: the `:ok` calls.
        let order: Box<dyn Iterator<Item = (Call, M::State)>> = if depth_first.is_some() {
            Box::new(steps.into_iter().rev())
        } else {
            Box::new(steps.into_iter())
        };
        for (call, state) in order {
            let mut next = Config {
                ok: c.ok.clone(),
                info: c.info.clone(),
                state,
                id: 0,
            };
            let to = match call {
                Call::Ok(j) => {
                    next.ok.set(j);
                    layer
                }
                Call::Info(i) => {
                    next.info.set(i);
                    if depth_first.is_some() {
                        layer
                    } else {
                        layer + 1
                    }
                }
            };
            if !seen.insert(&mut next) {
                continue;
            }
            // Every configuration recorded counts, dominated ones too: they stay queued.
            if seen.dominated.len() > limits.max_cached {
                return Some(Verdict::Unknown {
                    reason: format!(
                        "{} configurations recorded: memory limit",
                        seen.dominated.len()
                    ),
                });
            }
            if next.ok.first_clear(h.ok.len()).is_none() {
                return Some(Verdict::Valid);
            }
            if layers.len() <= to {
                layers.resize_with(to + 1, Vec::new);
            }
            layers[to].push(next);
        }
    }
    Some(Verdict::Invalid {
        op: furthest.map_or_else(
            || "no operation can be linearized first".to_owned(),
            |f| describe_furthest(&f, h),
        ),
    })
}

/// The calls that take effect in `state`, with the state after each. An indeterminate call
/// is left out where another reaches the same state and it covers that other
/// ([`Model::covers`]): whatever follows the stronger one, the weaker one followed by the
/// same operations (the stronger in its place) does too, and the stronger stays available.
fn successors<M: Model>(
    model: &M,
    h: &Prepared,
    state: &M::State,
    calls: Vec<Call>,
) -> Vec<(Call, M::State)> {
    let op = |call: &Call| match *call {
        Call::Ok(j) => &h.ok[j],
        Call::Info(i) => &h.info[i],
    };
    let steps: Vec<(Call, M::State)> = calls
        .into_iter()
        .filter_map(|call| model.step(state, op(&call)).map(|s| (call, s)))
        .collect();
    let weaker_exists = |call: &Call, to: &M::State| {
        steps.iter().any(|(other, s)| {
            matches!(other, Call::Info(_))
                && other != call
                && s == to
                && model.covers(op(call), op(other))
                && !model.covers(op(other), op(call))
        })
    };
    steps
        .iter()
        .filter(|(call, to)| matches!(call, Call::Ok(_)) || !weaker_exists(call, to))
        .cloned()
        .collect()
}

/// Says which operation could not be linearized where the search got furthest, in which
/// state, and which calls were open there.
fn describe_furthest(f: &Furthest, h: &Prepared) -> String {
    let mut text = format!(
        "{} (after {} operations linearized, in state {}",
        describe(&h.ok[f.blocked]),
        f.linearized,
        f.state
    );
    let others: Vec<String> = f
        .calls
        .iter()
        .filter(|c| **c != Call::Ok(f.blocked))
        .map(|c| match c {
            Call::Ok(j) => short(&h.ok[*j]),
            Call::Info(i) => short(&h.info[*i]),
        })
        .collect();
    if !others.is_empty() {
        text.push_str(&format!(
            "; the calls open there lead no further either: {}",
            others.join(", ")
        ));
    }
    text.push(')');
    text
}

fn short(op: &Operation) -> String {
    format!(
        "process {} {} {} ({}, invoked at {})",
        op.process,
        op.f,
        edn_format::emit_str(&op.value),
        op.outcome.name(),
        op.invoke
    )
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

    /// Two indeterminate operations could each explain the first read of 1; only the write
    /// can explain the second (from 2). The search spends the compare-and-set first (the
    /// write covers it), and keeps the write for where it is needed.
    #[test]
    fn the_weaker_indeterminate_operation_is_spent_first() {
        let h = "[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :info :f :write :value 1} \
                  {:process 1 :type :invoke :f :cas :value [0 1]} {:process 1 :type :info :f :cas :value [0 1]} \
                  {:process 2 :type :invoke :f :read :value nil} {:process 2 :type :ok :f :read :value 1} \
                  {:process 2 :type :invoke :f :write :value 2} {:process 2 :type :ok :f :write :value 2} \
                  {:process 2 :type :invoke :f :read :value nil} {:process 2 :type :ok :f :read :value 1}]";
        assert!(verdict(h).is_valid());
        // Without the write, the second read has nothing to explain it.
        let without = h.replacen(
            ":f :write :value 1} {:process 0 :type :info :f :write :value 1}",
            ":f :write :value 1} {:process 0 :type :fail :f :write :value 1}",
            1,
        );
        assert!(verdict(&without).is_invalid());
    }

    /// The verdict names the operation the search could not get past, the state there, and
    /// the calls that were open; the cost counts what it explored.
    #[test]
    fn an_invalid_verdict_says_where_the_search_stopped() {
        let h = "[{:process 0 :type :invoke :f :write :value 1} {:process 0 :type :ok :f :write :value 1} \
                  {:process 1 :type :invoke :f :cas :value [1 3]} \
                  {:process 2 :type :invoke :f :read :value nil} {:process 2 :type :ok :f :read :value 2}]";
        let ops = operations(&parse(h).expect("parses")).expect("pairs");
        let search = search(&CasRegister::default(), &ops, Limits::default());
        let Verdict::Invalid { op } = &search.verdict else {
            panic!("{:?}", search.verdict);
        };
        assert!(op.starts_with("process 2 read 2"), "{op}");
        assert!(op.contains("in state Integer(1)"), "{op}");
        assert!(op.contains("process 1 cas [1 3] (info"), "{op}");
        assert!(search.cost.configurations >= 2, "{:?}", search.cost);
    }

    /// Configurations that differ only in which indeterminate operations took effect are
    /// dominated by the one with fewer: twenty indeterminate writes of distinct values before
    /// an impossible read are decided after a few hundred configurations, where every subset
    /// of them would be a million.
    #[test]
    fn indeterminate_operations_do_not_multiply_the_search() {
        let mut h = String::from("[");
        for p in 0..20 {
            h.push_str(&format!(
                "{{:process {p} :type :invoke :f :write :value {p}}} {{:process {p} :type :info :f :write :value {p}}} "
            ));
        }
        h.push_str("{:process 99 :type :invoke :f :read :value nil} {:process 99 :type :ok :f :read :value 77}]");
        let ops = operations(&parse(&h).expect("parses")).expect("pairs");
        let search = search(&CasRegister::default(), &ops, Limits::default());
        assert!(search.verdict.is_invalid(), "{:?}", search.verdict);
        assert!(search.cost.configurations < 1000, "{:?}", search.cost);
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
