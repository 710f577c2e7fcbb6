//! The history of a run, recorded as it happens: every client operation's invocation and
//! completion, and every fault, in one total order (the order the recorder saw them), each
//! with `:index` and `:time` (nanoseconds since the run began), as Jepsen's `history.edn`.

use std::sync::Mutex;
use std::time::Instant;

use edn_format::{Keyword, Value};

use crate::history::{Event, OpType};

/// Who did something: a client process or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Process(i64),
    Nemesis,
}

#[derive(Debug)]
struct Recorded {
    actor: Actor,
    kind: OpType,
    f: String,
    value: Value,
    /// Why an operation failed or its outcome is unknown (`:error`).
    error: Option<String>,
    time_ns: u128,
}

/// Collects events from every worker; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    events: Mutex<Vec<Recorded>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// EDN keyword `:name`.
pub fn kw(name: &str) -> Value {
    Value::Keyword(Keyword::from_name(name))
}

/// EDN `[a b]` of two integers or nils.
pub fn pair(a: i64, b: Option<i64>) -> Value {
    Value::Vector(vec![
        Value::Integer(a),
        b.map_or(Value::Nil, Value::Integer),
    ])
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    /// Records one event; returns its index.
    pub fn record(&self, actor: Actor, kind: OpType, f: &str, value: Value) -> usize {
        self.record_error(actor, kind, f, value, None)
    }

    /// Records one event with the error that ended it.
    pub fn record_error(
        &self,
        actor: Actor,
        kind: OpType,
        f: &str,
        value: Value,
        error: Option<String>,
    ) -> usize {
        let mut events = match self.events.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // The time is taken under the lock, so that time order is index order.
        let time_ns = self.start.elapsed().as_nanos();
        events.push(Recorded {
            actor,
            kind,
            f: f.to_owned(),
            value,
            error,
            time_ns,
        });
        events.len() - 1
    }

    /// The client events, as the checkers read them (the nemesis is left out, as
    /// [`crate::history::parse`] leaves it out of a stored history).
    pub fn events(&self) -> Vec<Event> {
        let events = match self.events.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        events
            .iter()
            .enumerate()
            .filter_map(|(index, e)| match e.actor {
                Actor::Process(process) => Some(Event {
                    index,
                    process,
                    kind: e.kind,
                    f: e.f.clone(),
                    value: e.value.clone(),
                }),
                Actor::Nemesis => None,
            })
            .collect()
    }

    /// The whole history in Jepsen's `history.edn` form: one map per line.
    pub fn to_edn(&self) -> String {
        let events = match self.events.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut out = String::new();
        for (index, e) in events.iter().enumerate() {
            let process = match e.actor {
                Actor::Process(p) => Value::Integer(p),
                Actor::Nemesis => kw("nemesis"),
            };
            let mut fields = vec![
                (kw("index"), Value::Integer(index as i64)),
                (
                    kw("time"),
                    Value::Integer(i64::try_from(e.time_ns).unwrap_or(i64::MAX)),
                ),
                (kw("type"), kw(e.kind.name())),
                (kw("process"), process),
                (kw("f"), kw(&e.f)),
                (kw("value"), e.value.clone()),
            ];
            if let Some(error) = &e.error {
                fields.push((kw("error"), Value::from(error.as_str())));
            }
            let map = Value::Map(fields.into_iter().collect());
            out.push_str(&edn_format::emit_str(&map));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{operations, parse};

    #[test]
    fn what_is_written_reads_back_the_same() {
        let r = Recorder::new();
        r.record(Actor::Process(0), OpType::Invoke, "write", pair(1, Some(3)));
        r.record(Actor::Nemesis, OpType::Info, "kill", Value::from("node 2"));
        r.record(Actor::Process(0), OpType::Ok, "write", pair(1, Some(3)));
        r.record(Actor::Process(1), OpType::Invoke, "read", pair(1, None));
        r.record_error(
            Actor::Process(1),
            OpType::Fail,
            "read",
            pair(1, None),
            Some("no active".into()),
        );
        let edn = r.to_edn();
        assert_eq!(edn.lines().count(), 5);
        assert!(edn.contains(":error \"no active\""), "{edn}");
        assert!(edn.contains(":nemesis"), "{edn}");
        let parsed = parse(&edn).expect("parses");
        assert_eq!(parsed, r.events());
        let ops = operations(&parsed).expect("pairs");
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].outcome, OpType::Ok);
        assert_eq!(ops[1].outcome, OpType::Fail);
    }
}
