//! The namespace as a sequential specification: raftfs's own single-node namespace logic
//! (`metaserver::namespace::tree` over the in-memory store) decides what each operation must
//! answer. The Jepsen check then judges what the distributed system adds (replication,
//! failover, the retry cache, reads on the active) against the semantics a single node
//! defines; those semantics are themselves checked against a plain model by the metaserver's
//! property test.
//!
//! Operations (`:value [argument result]`): `mkdir`, `create` and `delete` of a path, `rename`
//! of `[src dst]`, each answering `"ok"` or the name of its error (`"AlreadyExists"`, ...);
//! `list` of a directory, answering its sorted names or an error name.

use std::collections::BTreeMap;

use edn_format::Value;
use raftfs_core::namespace::kv::{MemKv, Txn};
use raftfs_core::namespace::{ApplyCtx, ApplyError, InodeKind, NsError, NsPath, Op, tree};

use super::Model;
use crate::history::{OpType, Operation};

/// The model, starting from an empty namespace in which `base` exists (the workload's own
/// directory, made before the history begins).
#[derive(Debug, Clone)]
pub struct NamespaceModel {
    pub base: String,
}

/// A namespace state. Two states are equal when their trees are (paths and kinds): whatever
/// else differs (inode ids, from a different order of creations) no operation here can tell.
#[derive(Debug, Clone)]
pub struct NsState {
    kv: MemKv,
    tree: BTreeMap<String, bool>,
}

impl PartialEq for NsState {
    fn eq(&self, other: &Self) -> bool {
        self.tree == other.tree
    }
}

impl Eq for NsState {}

const CTX: ApplyCtx = ApplyCtx {
    now_ms: 0,
    lease_ms: 60_000,
};

/// What an operation answered: `"ok"`, an error name, or a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Done(String),
    Listing(Vec<String>),
}

impl Answer {
    /// As recorded in a history.
    pub fn to_value(&self) -> Value {
        match self {
            Answer::Done(s) => Value::from(s.as_str()),
            Answer::Listing(names) => {
                Value::Vector(names.iter().map(|n| Value::from(n.as_str())).collect())
            }
        }
    }

    fn from_value(v: &Value) -> Option<Answer> {
        match v {
            Value::String(s) => Some(Answer::Done(s.clone())),
            Value::Vector(items) | Value::List(items) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(Answer::Listing),
            _ => None,
        }
    }
}

/// The parts of a recorded `[argument result]` value.
fn split(v: &Value) -> Option<(&Value, &Value)> {
    match v {
        Value::Vector(x) | Value::List(x) if x.len() == 2 => Some((&x[0], &x[1])),
        _ => None,
    }
}

fn path(v: &Value) -> Option<NsPath> {
    match v {
        Value::String(s) => NsPath::parse(s).ok(),
        _ => None,
    }
}

/// The mutation an operation stands for (`None` for `list` or an unknown operation).
fn mutation(f: &str, arg: &Value) -> Option<Op> {
    Some(match f {
        "mkdir" => Op::Mkdir {
            path: path(arg)?,
            parents: false,
            permission: 0o755,
            owner: "jepsen".into(),
            group: None,
        },
        "create" => Op::Create {
            path: path(arg)?,
            overwrite: false,
            create_parents: false,
            permission: 0o644,
            owner: "jepsen".into(),
            group: None,
            policy: None,
            holder: "jepsen".into(),
            // The server's default; the model never writes blocks.
            block_size: 128 << 20,
        },
        "delete" => Op::Delete {
            path: path(arg)?,
            recursive: true,
        },
        "rename" => {
            let (src, dst) = split(arg)?;
            Op::Rename {
                src: path(src)?,
                dst: path(dst)?,
                overwrite: false,
            }
        }
        _ => return None,
    })
}

fn error_name(e: &NsError) -> String {
    e.kind().to_owned()
}

impl NsState {
    fn new() -> Self {
        Self {
            kv: MemKv::new(),
            tree: BTreeMap::new(),
        }
    }

    /// Applies `op` (a refused one changes nothing); returns the answer.
    fn apply(&mut self, op: &Op) -> Answer {
        let mut txn = Txn::new(&self.kv);
        let result = tree::apply(&mut txn, &CTX, op);
        let writes = txn.into_writes();
        match result {
            Ok(_) => {
                self.kv.commit(writes);
                self.tree = walk(&self.kv);
                Answer::Done("ok".into())
            }
            Err(ApplyError::Ns(e)) => Answer::Done(error_name(&e)),
            Err(ApplyError::Store(e)) => Answer::Done(format!("store error: {e}")),
        }
    }

    fn list(&self, dir: &NsPath) -> Answer {
        match tree::list(&self.kv, dir, None, usize::MAX / 2) {
            Ok((entries, _)) => Answer::Listing(entries.into_iter().map(|i| i.name).collect()),
            Err(ApplyError::Ns(e)) => Answer::Done(error_name(&e)),
            Err(ApplyError::Store(e)) => Answer::Done(format!("store error: {e}")),
        }
    }
}

/// Every path of the tree and whether it is a directory.
fn walk(kv: &MemKv) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    let mut stack = vec![String::from("/")];
    while let Some(dir) = stack.pop() {
        let Ok(p) = NsPath::parse(&dir) else { continue };
        let Ok((entries, _)) = tree::list(kv, &p, None, usize::MAX / 2) else {
            continue;
        };
        for e in entries {
            let child = if dir == "/" {
                format!("/{}", e.name)
            } else {
                format!("{dir}/{}", e.name)
            };
            let is_dir = e.kind == InodeKind::Directory;
            if is_dir {
                stack.push(child.clone());
            }
            out.insert(child, is_dir);
        }
    }
    out
}

impl NamespaceModel {
    /// What `f` on `arg` answers in `state`, and the state after it.
    pub fn run(&self, state: &NsState, f: &str, arg: &Value) -> Option<(Answer, NsState)> {
        if f == "list" {
            return Some((state.list(&path(arg)?), state.clone()));
        }
        let op = mutation(f, arg)?;
        let mut next = state.clone();
        let answer = next.apply(&op);
        Some((answer, next))
    }
}

impl Model for NamespaceModel {
    type State = NsState;

    fn init(&self) -> NsState {
        let mut s = NsState::new();
        if let Ok(base) = NsPath::parse(&self.base) {
            s.apply(&Op::Mkdir {
                path: base,
                parents: true,
                permission: 0o755,
                owner: "jepsen".into(),
                group: None,
            });
        }
        s
    }

    fn step(&self, state: &NsState, op: &Operation) -> Option<NsState> {
        let (arg, _) = split(&op.invoke_value)?;
        let (answer, next) = self.run(state, &op.f, arg)?;
        if op.outcome != OpType::Ok {
            // Unknown outcome: it took effect (now), whatever it would have answered.
            return Some(next);
        }
        let (_, seen) = split(&op.value)?;
        (Answer::from_value(seen)? == answer).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::linearizable::{Limits, check};
    use crate::history::{operations, parse};

    fn verdict(h: &str) -> crate::checker::Verdict {
        let ops = operations(&parse(h).expect("parses")).expect("pairs");
        check(
            &NamespaceModel { base: "/ns".into() },
            &ops,
            Limits::default(),
        )
    }

    fn ev(p: i64, t: &str, f: &str, v: &str) -> String {
        format!("{{:process {p} :type :{t} :f :{f} :value {v}}}\n")
    }

    #[test]
    fn the_model_answers_as_the_namespace_does() {
        let m = NamespaceModel { base: "/ns".into() };
        let s = m.init();
        let v = |s: &str| Value::from(s);
        let (a, s) = m.run(&s, "mkdir", &v("/ns/a")).expect("runs");
        assert_eq!(a, Answer::Done("ok".into()));
        let (a, s) = m.run(&s, "mkdir", &v("/ns/a")).expect("runs");
        assert_eq!(a, Answer::Done("AlreadyExists".into()));
        let (a, s) = m.run(&s, "create", &v("/ns/b/c")).expect("runs");
        assert_eq!(a, Answer::Done("ParentNotFound".into()));
        let (_, s) = m.run(&s, "create", &v("/ns/a/f")).expect("runs");
        let rename = Value::Vector(vec![v("/ns/a"), v("/ns/a/f/g")]);
        let (a, s) = m.run(&s, "rename", &rename).expect("runs");
        assert_eq!(a, Answer::Done("RenameIntoSubtree".into()));
        let (a, _) = m.run(&s, "list", &v("/ns/a")).expect("runs");
        assert_eq!(a, Answer::Listing(vec!["f".into()]));
    }

    #[test]
    fn histories_the_namespace_could_give_are_linearizable() {
        // Two concurrent mkdirs of one path: one wins, one finds it there.
        let h = ev(0, "invoke", "mkdir", r#"["/ns/a" nil]"#)
            + &ev(1, "invoke", "mkdir", r#"["/ns/a" nil]"#)
            + &ev(1, "ok", "mkdir", r#"["/ns/a" "AlreadyExists"]"#)
            + &ev(0, "ok", "mkdir", r#"["/ns/a" "ok"]"#)
            + &ev(2, "invoke", "list", r#"["/ns" nil]"#)
            + &ev(2, "ok", "list", r#"["/ns" ["a"]]"#);
        assert!(verdict(&h).is_valid(), "{:?}", verdict(&h));
        // A rename whose outcome is unknown may have happened.
        let h = ev(0, "invoke", "mkdir", r#"["/ns/a" nil]"#)
            + &ev(0, "ok", "mkdir", r#"["/ns/a" "ok"]"#)
            + &ev(0, "invoke", "rename", r#"[["/ns/a" "/ns/b"] nil]"#)
            + &ev(0, "info", "rename", r#"[["/ns/a" "/ns/b"] nil]"#)
            + &ev(1, "invoke", "list", r#"["/ns" nil]"#)
            + &ev(1, "ok", "list", r#"["/ns" ["b"]]"#);
        assert!(verdict(&h).is_valid());
    }

    #[test]
    fn lost_and_impossible_answers_are_not() {
        // An acknowledged mkdir missing from a later listing (a lost write).
        let lost = ev(0, "invoke", "mkdir", r#"["/ns/a" nil]"#)
            + &ev(0, "ok", "mkdir", r#"["/ns/a" "ok"]"#)
            + &ev(1, "invoke", "list", r#"["/ns" nil]"#)
            + &ev(1, "ok", "list", r#"["/ns" []]"#);
        assert!(verdict(&lost).is_invalid());
        // Both concurrent mkdirs of one path succeeded (applied twice).
        let twice = ev(0, "invoke", "mkdir", r#"["/ns/a" nil]"#)
            + &ev(1, "invoke", "mkdir", r#"["/ns/a" nil]"#)
            + &ev(1, "ok", "mkdir", r#"["/ns/a" "ok"]"#)
            + &ev(0, "ok", "mkdir", r#"["/ns/a" "ok"]"#);
        assert!(verdict(&twice).is_invalid());
        // A delete that says the directory is missing right after it was made (a stale read
        // of the tree by a mutation).
        let stale = ev(0, "invoke", "mkdir", r#"["/ns/a" nil]"#)
            + &ev(0, "ok", "mkdir", r#"["/ns/a" "ok"]"#)
            + &ev(1, "invoke", "delete", r#"["/ns/a" nil]"#)
            + &ev(1, "ok", "delete", r#"["/ns/a" "NotFound"]"#);
        assert!(verdict(&stale).is_invalid());
    }
}
