//! Sequential models that histories are checked against.

use edn_format::Value;

use crate::history::{OpType, Operation};

/// A sequential specification: a state and which operations may take effect in it.
pub trait Model {
    type State: Clone + Eq + std::fmt::Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `op` takes effect in `state`, or `None` if it cannot take effect there
    /// with the result it reported (a read of another value, a compare-and-set that should
    /// have failed).
    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State>;

    /// Whether `op`, when its outcome is unknown, cannot change the state (a read): the
    /// checker then leaves it out, which halves its search for every such operation.
    fn inert_unless_ok(&self, _op: &Operation) -> bool {
        false
    }

    /// Whether indeterminate `stronger` can do whatever indeterminate `weaker` can: in every
    /// state where `weaker` takes effect, `stronger` does too, with the same result (so the
    /// relation is transitive). The checker then prefers to spend the weaker one.
    fn covers(&self, _stronger: &Operation, _weaker: &Operation) -> bool {
        false
    }
}

/// One compare-and-set register (Knossos's `cas-register`): `:write v`, `:cas [old new]`,
/// `:read v` (a read of `nil` matches any value). It holds `initial` at first: 0 by default
/// (`(cas-register 0)`, as the Knossos corpus is checked); `nil` is Knossos's
/// `(cas-register)` without an argument, as Jepsen's own etcd tests record.
#[derive(Debug, Clone)]
pub struct CasRegister {
    pub initial: Value,
}

impl Default for CasRegister {
    fn default() -> Self {
        Self {
            initial: Value::Integer(0),
        }
    }
}

impl Model for CasRegister {
    type State = Value;

    fn init(&self) -> Value {
        self.initial.clone()
    }

    fn step(&self, state: &Value, op: &Operation) -> Option<Value> {
        match op.f.as_str() {
            "read" => {
                // A read whose outcome is unknown tells nothing.
                let seen = if op.outcome == OpType::Ok {
                    &op.value
                } else {
                    &Value::Nil
                };
                (*seen == Value::Nil || seen == state).then(|| state.clone())
            }
            "write" => Some(op.invoke_value.clone()),
            "cas" => match &op.invoke_value {
                Value::Vector(v) | Value::List(v) if v.len() == 2 => {
                    (v[0] == *state).then(|| v[1].clone())
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn inert_unless_ok(&self, op: &Operation) -> bool {
        op.f == "read"
    }

    /// A write of `v` covers another write of `v` and every compare-and-set to `v`.
    fn covers(&self, stronger: &Operation, weaker: &Operation) -> bool {
        let to = match (weaker.f.as_str(), &weaker.invoke_value) {
            ("write", v) => v,
            ("cas", Value::Vector(v) | Value::List(v)) if v.len() == 2 => &v[1],
            _ => return false,
        };
        stronger.f == "write" && stronger.invoke_value == *to
    }
}

/// Splits a history of independent keys (Jepsen's `[key value]` tuples) into one history per
/// key, each with plain values, so that each key is checked on its own (a register per key).
pub fn split_by_key(ops: &[Operation]) -> Result<Vec<(Value, Vec<Operation>)>, String> {
    let mut by_key: std::collections::BTreeMap<Value, Vec<Operation>> = Default::default();
    let inner = |v: &Value| match v {
        Value::Vector(t) | Value::List(t) if t.len() == 2 => Some((t[0].clone(), t[1].clone())),
        _ => None,
    };
    for op in ops {
        let (key, invoke_value) = inner(&op.invoke_value)
            .ok_or_else(|| format!("operation at {} has no [key value] tuple", op.invoke))?;
        let value = inner(&op.value).map_or(Value::Nil, |(_, v)| v);
        by_key.entry(key).or_default().push(Operation {
            invoke_value,
            value,
            ..op.clone()
        });
    }
    Ok(by_key.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: &str, invoke: Value, value: Value, outcome: OpType) -> Operation {
        Operation {
            process: 0,
            f: f.into(),
            invoke_value: invoke,
            value,
            outcome,
            invoke: 0,
            complete: Some(1),
        }
    }

    #[test]
    fn register_steps() {
        let m = CasRegister::default();
        let s = m.init();
        let w = op("write", Value::Integer(3), Value::Integer(3), OpType::Ok);
        let s3 = m.step(&s, &w).expect("write");
        assert_eq!(s3, Value::Integer(3));
        let r_ok = op("read", Value::Nil, Value::Integer(3), OpType::Ok);
        let r_bad = op("read", Value::Nil, Value::Integer(4), OpType::Ok);
        let r_nil = op("read", Value::Nil, Value::Nil, OpType::Ok);
        assert!(m.step(&s3, &r_ok).is_some());
        assert!(m.step(&s3, &r_bad).is_none());
        assert!(m.step(&s3, &r_nil).is_some());
        let cas = |a, b| {
            op(
                "cas",
                Value::Vector(vec![Value::Integer(a), Value::Integer(b)]),
                Value::Nil,
                OpType::Ok,
            )
        };
        assert_eq!(m.step(&s3, &cas(3, 5)), Some(Value::Integer(5)));
        assert_eq!(m.step(&s3, &cas(2, 5)), None);
    }
}

pub mod namespace;
