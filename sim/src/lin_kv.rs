//! A `lin-kv` client as Jepsen's workloads play one: it draws operations from a seed (reads,
//! writes of wide values, a cas of the value it last read), sends each to a node, and turns
//! the answer into a history event: `:ok` (a read of a key never written reads nil), `:fail`
//! where the error is definite (Maelstrom's codes 10, 11, 12, 20, 22, and any failed read),
//! `:info` where the operation may still happen. A process whose operation is `:info` is replaced by a new one, as in Jepsen.
//!
//! The Maelstrom test driver and the simulation record their histories through it, in the
//! EDN the checkers read (registers that start absent: check with `--initial nil`).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::maelstrom::code;

/// What became of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }
}

/// One operation drawn by a [`Client`]: the request's body (without `msg_id`) and what the
/// history says was asked.
#[derive(Debug, Clone)]
pub struct Operation {
    pub f: &'static str,
    pub key: i64,
    pub body: Value,
    asked: Value,
}

/// One client: its process number, its generator, the value it last read of each key.
#[derive(Debug)]
pub struct Client {
    process: i64,
    /// How many clients there are: a replaced process takes the number this far on.
    clients: i64,
    keys: i64,
    rng: StdRng,
    seen: BTreeMap<i64, i64>,
}

impl Client {
    /// Client `index` of `clients`, over keys `0..keys`, drawing from `seed`.
    pub fn new(index: usize, clients: usize, keys: i64, seed: u64) -> Self {
        Client {
            process: index as i64,
            clients: clients as i64,
            keys: keys.max(1),
            // Salted: a client's draws are not those of anything else seeded with `seed`.
            rng: StdRng::seed_from_u64(
                (seed ^ 0x6c69_6e2d_6b76)
                    .wrapping_add((index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            ),
            seen: BTreeMap::new(),
        }
    }

    /// A number from this client's generator (which node to ask, how long to wait).
    pub fn draw(&mut self, below: u64) -> u64 {
        self.rng.random_range(0..below.max(1))
    }

    /// The next operation.
    pub fn next_operation(&mut self) -> Operation {
        let key = self.rng.random_range(0..self.keys);
        match self.rng.random_range(0..3) {
            0 => Operation {
                f: "read",
                key,
                body: json!({"type": "read", "key": key}),
                asked: Value::Null,
            },
            // Values from a wide range: a read of an old value cannot be explained away by
            // an unrelated write of the same value.
            1 => {
                let v = self.rng.random_range(0..1_000_000);
                Operation {
                    f: "write",
                    key,
                    body: json!({"type": "write", "key": key, "value": v}),
                    asked: json!(v),
                }
            }
            _ => {
                // A cas expects the value this client last read of the key.
                let a = self.seen.get(&key).copied().unwrap_or(0);
                let b = self.rng.random_range(0..1_000_000);
                Operation {
                    f: "cas",
                    key,
                    body: json!({"type": "cas", "key": key, "from": a, "to": b}),
                    asked: json!([a, b]),
                }
            }
        }
    }

    /// The `:invoke` event of `op`, at `time` (ns) if the history has times.
    pub fn invoke(&self, op: &Operation, time: Option<u64>) -> String {
        event(self.process, "invoke", op, &op.asked, time)
    }

    /// The completion of `op` given the node's `reply` (`None`: no answer in time): the
    /// event and the outcome.
    pub fn complete(
        &mut self,
        op: &Operation,
        reply: Option<&Value>,
        time: Option<u64>,
    ) -> (String, Outcome) {
        let (outcome, value) = match reply {
            Some(r) if r["type"] == json!(format!("{}_ok", op.f)) => {
                if let Some(v) = r["value"].as_i64() {
                    self.seen.insert(op.key, v);
                }
                let value = if op.f == "read" {
                    r["value"].clone()
                } else {
                    op.asked.clone()
                };
                (Outcome::Ok, value)
            }
            // The register of a key never written is nil (`--initial nil`).
            Some(r) if op.f == "read" && r["code"] == json!(code::KEY_DOES_NOT_EXIST) => {
                (Outcome::Ok, Value::Null)
            }
            // Definite errors: it did not happen.
            Some(r) if is_definite(r) => (Outcome::Fail, op.asked.clone()),
            // A read changes nothing: one that may have happened did not matter.
            _ if op.f == "read" => (Outcome::Fail, op.asked.clone()),
            _ => (Outcome::Info, op.asked.clone()),
        };
        let line = event(self.process, outcome.name(), op, &value, time);
        if outcome == Outcome::Info {
            // As Jepsen does: a process whose operation may still happen is replaced.
            self.process += self.clients;
        }
        (line, outcome)
    }
}

fn is_definite(reply: &Value) -> bool {
    let definite = [
        code::NOT_SUPPORTED,
        code::TEMPORARILY_UNAVAILABLE,
        code::MALFORMED_REQUEST,
        code::KEY_DOES_NOT_EXIST,
        code::PRECONDITION_FAILED,
    ];
    reply["type"] == json!("error")
        && reply["code"]
            .as_u64()
            .is_some_and(|c| definite.contains(&c))
}

fn event(process: i64, kind: &str, op: &Operation, value: &Value, time: Option<u64>) -> String {
    let time = time.map(|t| format!(", :time {t}")).unwrap_or_default();
    format!(
        "{{:process {process}, :type :{kind}, :f :{}, :value {}{time}}}",
        op.f,
        edn_value(op.f, op.key, value)
    )
}

/// An operation's value in the history: `[key value]`, or `[key [from to]]` for a cas.
fn edn_value(f: &str, key: i64, value: &Value) -> String {
    let v = |x: &Value| {
        if x.is_null() {
            "nil".to_owned()
        } else {
            x.to_string()
        }
    };
    match f {
        "cas" => format!("[{key} [{} {}]]", v(&value[0]), v(&value[1])),
        _ => format!("[{key} {}]", v(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_events() {
        let mut c = Client::new(1, 4, 1, 7);
        let op = Operation {
            f: "cas",
            key: 0,
            body: json!({}),
            asked: json!([3, 5]),
        };
        assert_eq!(
            c.invoke(&op, Some(10)),
            "{:process 1, :type :invoke, :f :cas, :value [0 [3 5]], :time 10}"
        );
        let (line, outcome) = c.complete(&op, Some(&json!({"type": "error", "code": 22})), None);
        assert_eq!(outcome, Outcome::Fail);
        assert_eq!(line, "{:process 1, :type :fail, :f :cas, :value [0 [3 5]]}");
        let (_, outcome) = c.complete(&op, None, None);
        assert_eq!(outcome, Outcome::Info);
        assert_eq!(c.process, 5, "replaced after :info");
        let read = Operation {
            f: "read",
            key: 0,
            body: json!({}),
            asked: Value::Null,
        };
        let (line, outcome) =
            c.complete(&read, Some(&json!({"type": "read_ok", "value": 9})), None);
        assert_eq!(outcome, Outcome::Ok);
        assert_eq!(line, "{:process 5, :type :ok, :f :read, :value [0 9]}");
        assert_eq!(c.seen.get(&0), Some(&9));
        let (line, _) = c.complete(&read, Some(&json!({"type": "error", "code": 20})), None);
        assert_eq!(line, "{:process 5, :type :ok, :f :read, :value [0 nil]}");
        let (_, outcome) = c.complete(&read, Some(&json!({"type": "error", "code": 0})), None);
        assert_eq!(outcome, Outcome::Fail, "a read that may have happened");
    }

    #[test]
    fn the_same_seed_draws_the_same_operations() {
        let draw = |seed| {
            let mut c = Client::new(0, 1, 3, seed);
            (0..20).map(|_| c.next_operation().body).collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }
}
