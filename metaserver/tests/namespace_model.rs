//! Property test: random operation sequences run against a plain in-memory model of the
//! namespace and against the real RocksDB state machine (several operations per entry, so
//! that the write overlay inside one apply is exercised too). Every result and the final
//! tree must agree.

use std::collections::BTreeMap;

use proptest::prelude::*;
use raftfs_metaserver::journal::state_machine::StateMachine;
use raftfs_metaserver::journal::{Batch, ClientId, Proposal};
use raftfs_metaserver::namespace::{
    ApplyCtx, Inode, InodeKind, NsError, NsPath, Op, OpOutput, tree,
};

type P = Vec<String>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File { holder: Option<String>, length: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    kind: Kind,
    permission: u16,
}

/// The model: a map from path to node, with the semantics written down plainly.
#[derive(Clone, Debug)]
struct Model {
    nodes: BTreeMap<P, Node>,
}

fn s(p: &[String]) -> String {
    NsPath::parse(&format!("/{}", p.join("/")))
        .map(|p| p.to_string())
        .unwrap_or_default()
}

impl Model {
    fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            Vec::new(),
            Node {
                kind: Kind::Dir,
                permission: 0o755,
            },
        );
        Self { nodes }
    }

    fn is_dir(&self, p: &[String]) -> bool {
        matches!(
            self.nodes.get(p),
            Some(Node {
                kind: Kind::Dir,
                ..
            })
        )
    }

    fn children(&self, p: &[String]) -> usize {
        self.nodes
            .keys()
            .filter(|k| k.len() == p.len() + 1 && k.starts_with(p))
            .count()
    }

    fn resolve(&self, p: &[String]) -> Result<(), NsError> {
        for i in 1..=p.len() {
            if !self.is_dir(&p[..i - 1]) {
                return Err(NsError::NotADirectory(s(&p[..i - 1])));
            }
            if !self.nodes.contains_key(&p[..i]) {
                return Err(NsError::NotFound(s(p)));
            }
        }
        Ok(())
    }

    fn resolve_parent(&self, p: &[String]) -> Result<(), NsError> {
        let parent = &p[..p.len() - 1];
        match self.resolve(parent) {
            Err(NsError::NotFound(_)) => Err(NsError::ParentNotFound(s(p))),
            Err(e) => Err(e),
            Ok(()) if !self.is_dir(parent) => Err(NsError::NotADirectory(s(parent))),
            Ok(()) => Ok(()),
        }
    }

    fn remove_subtree(&mut self, p: &[String]) {
        self.nodes.retain(|k, _| !k.starts_with(p));
    }

    fn apply(&mut self, op: &MOp) -> Result<(), &'static str> {
        let before = self.nodes.clone();
        let r = self.apply_inner(op);
        if r.is_err() {
            self.nodes = before;
        }
        r.map_err(|e| e.kind())
    }

    fn apply_inner(&mut self, op: &MOp) -> Result<(), NsError> {
        match op {
            MOp::Mkdir { p, parents } => {
                if p.is_empty() {
                    return if *parents {
                        Ok(())
                    } else {
                        Err(NsError::AlreadyExists("/".into()))
                    };
                }
                if *parents {
                    for i in 1..=p.len() {
                        match self.nodes.get(&p[..i]) {
                            Some(Node {
                                kind: Kind::Dir, ..
                            }) => {}
                            Some(_) if i == p.len() => return Err(NsError::AlreadyExists(s(p))),
                            Some(_) => return Err(NsError::NotADirectory(s(&p[..i]))),
                            None => {
                                self.nodes.insert(
                                    p[..i].to_vec(),
                                    Node {
                                        kind: Kind::Dir,
                                        permission: 0o755,
                                    },
                                );
                            }
                        }
                    }
                    return Ok(());
                }
                self.resolve_parent(p)?;
                if self.nodes.contains_key(p) {
                    return Err(NsError::AlreadyExists(s(p)));
                }
                self.nodes.insert(
                    p.clone(),
                    Node {
                        kind: Kind::Dir,
                        permission: 0o755,
                    },
                );
                Ok(())
            }
            MOp::Create {
                p,
                overwrite,
                holder,
            } => {
                if p.is_empty() {
                    return Err(NsError::IsADirectory("/".into()));
                }
                self.resolve_parent(p)?;
                if let Some(existing) = self.nodes.get(p) {
                    match &existing.kind {
                        Kind::Dir => return Err(NsError::IsADirectory(s(p))),
                        Kind::File { .. } if !overwrite => {
                            return Err(NsError::AlreadyExists(s(p)));
                        }
                        Kind::File {
                            holder: Some(h), ..
                        } if h != holder => {
                            return Err(NsError::LeaseConflict {
                                path: s(p),
                                holder: h.clone(),
                            });
                        }
                        Kind::File { .. } => {}
                    }
                }
                let file = Kind::File {
                    holder: Some(holder.clone()),
                    length: 0,
                };
                self.nodes.insert(
                    p.clone(),
                    Node {
                        kind: file,
                        permission: 0o644,
                    },
                );
                Ok(())
            }
            MOp::Complete { p, holder, length } => {
                self.resolve(p)?;
                let node = self
                    .nodes
                    .get_mut(p)
                    .ok_or_else(|| NsError::NotFound(s(p)))?;
                match &node.kind {
                    Kind::Dir => Err(NsError::IsADirectory(s(p))),
                    Kind::File { holder: None, .. } => Err(NsError::NotUnderConstruction(s(p))),
                    Kind::File {
                        holder: Some(h), ..
                    } if h != holder => Err(NsError::LeaseConflict {
                        path: s(p),
                        holder: h.clone(),
                    }),
                    // Without block groups (the model writes none) a file holds 0 bytes, and
                    // completing it at any other length is refused.
                    Kind::File { length: have, .. } if have != length => {
                        Err(NsError::InvalidArgument(s(p)))
                    }
                    Kind::File { .. } => {
                        node.kind = Kind::File {
                            holder: None,
                            length: *length,
                        };
                        Ok(())
                    }
                }
            }
            MOp::Rename {
                src,
                dst,
                overwrite,
            } => {
                if src.is_empty() {
                    return Err(NsError::RootNotAllowed(s(src)));
                }
                if dst.is_empty() {
                    return Err(NsError::RootNotAllowed(s(dst)));
                }
                self.resolve(src)?;
                if src == dst {
                    return Ok(());
                }
                if dst.len() > src.len() && dst.starts_with(src) {
                    return Err(NsError::RenameIntoSubtree {
                        src: s(src),
                        dst: s(dst),
                    });
                }
                self.resolve_parent(dst)?;
                if self.nodes.contains_key(dst) {
                    if !overwrite {
                        return Err(NsError::AlreadyExists(s(dst)));
                    }
                    match (self.is_dir(src), self.is_dir(dst)) {
                        (true, false) => return Err(NsError::NotADirectory(s(dst))),
                        (false, true) => return Err(NsError::IsADirectory(s(dst))),
                        (true, true) if self.children(dst) > 0 => {
                            return Err(NsError::DirectoryNotEmpty(s(dst)));
                        }
                        _ => {}
                    }
                    self.remove_subtree(dst);
                }
                let moved: Vec<(P, Node)> = self
                    .nodes
                    .iter()
                    .filter(|(k, _)| k.starts_with(src))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.remove_subtree(src);
                for (k, v) in moved {
                    let mut nk = dst.clone();
                    nk.extend_from_slice(&k[src.len()..]);
                    self.nodes.insert(nk, v);
                }
                Ok(())
            }
            MOp::Delete { p, recursive } => {
                if p.is_empty() {
                    return Err(NsError::RootNotAllowed("/".into()));
                }
                self.resolve(p)?;
                if self.is_dir(p) && self.children(p) > 0 && !recursive {
                    return Err(NsError::DirectoryNotEmpty(s(p)));
                }
                self.remove_subtree(p);
                Ok(())
            }
            MOp::Chmod { p, permission } => {
                if *permission > 0o7777 {
                    return Err(NsError::InvalidArgument("permission".into()));
                }
                self.resolve(p)?;
                if let Some(n) = self.nodes.get_mut(p) {
                    n.permission = *permission;
                }
                Ok(())
            }
        }
    }
}

/// Operations the test generates (over a small universe of names, so they collide often).
#[derive(Clone, Debug)]
enum MOp {
    Mkdir {
        p: P,
        parents: bool,
    },
    Create {
        p: P,
        overwrite: bool,
        holder: String,
    },
    Complete {
        p: P,
        holder: String,
        length: u64,
    },
    Rename {
        src: P,
        dst: P,
        overwrite: bool,
    },
    Delete {
        p: P,
        recursive: bool,
    },
    Chmod {
        p: P,
        permission: u16,
    },
}

fn path_strategy() -> impl Strategy<Value = P> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..4)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

fn holder_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["h1", "h2"]).prop_map(str::to_owned)
}

fn op_strategy() -> impl Strategy<Value = MOp> {
    prop_oneof![
        3 => (path_strategy(), any::<bool>()).prop_map(|(p, parents)| MOp::Mkdir { p, parents }),
        3 => (path_strategy(), any::<bool>(), holder_strategy()).prop_map(|(p, overwrite, holder)| MOp::Create { p, overwrite, holder }),
        2 => (path_strategy(), holder_strategy(), prop::sample::select(vec![0u64, 0, 0, 7])).prop_map(|(p, holder, length)| MOp::Complete { p, holder, length }),
        3 => (path_strategy(), path_strategy(), any::<bool>()).prop_map(|(src, dst, overwrite)| MOp::Rename { src, dst, overwrite }),
        2 => (path_strategy(), any::<bool>()).prop_map(|(p, recursive)| MOp::Delete { p, recursive }),
        1 => (path_strategy(), prop::sample::select(vec![0o700u16, 0o644, 0o10000])).prop_map(|(p, permission)| MOp::Chmod { p, permission }),
    ]
}

fn ns(p: &[String]) -> NsPath {
    NsPath::parse(&format!("/{}", p.join("/"))).unwrap_or_else(|_| NsPath::root())
}

fn to_op(op: &MOp) -> Op {
    match op {
        MOp::Mkdir { p, parents } => Op::Mkdir {
            path: ns(p),
            parents: *parents,
            permission: 0o755,
            owner: "u".into(),
            group: None,
        },
        MOp::Create {
            p,
            overwrite,
            holder,
        } => Op::Create {
            path: ns(p),
            overwrite: *overwrite,
            create_parents: false,
            permission: 0o644,
            owner: "u".into(),
            group: None,
            policy: None,
            holder: holder.clone(),
            block_size: 1 << 20,
        },
        MOp::Complete { p, holder, length } => Op::Complete {
            path: ns(p),
            holder: holder.clone(),
            length: *length,
        },
        MOp::Rename {
            src,
            dst,
            overwrite,
        } => Op::Rename {
            src: ns(src),
            dst: ns(dst),
            overwrite: *overwrite,
        },
        MOp::Delete { p, recursive } => Op::Delete {
            path: ns(p),
            recursive: *recursive,
        },
        MOp::Chmod { p, permission } => Op::SetPermission {
            path: ns(p),
            permission: *permission,
        },
    }
}

/// The whole tree as stored, read back through the namespace's own listing.
fn stored_tree(sm: &StateMachine) -> BTreeMap<P, Node> {
    let db = sm.shared().db();
    let mut out = BTreeMap::new();
    let mut stack: Vec<(P, Inode)> =
        vec![(Vec::new(), tree::stat(&*db, &NsPath::root()).expect("root"))];
    while let Some((p, inode)) = stack.pop() {
        let kind = match inode.kind {
            InodeKind::Directory => {
                let (children, more) = tree::list(&*db, &ns(&p), None, 10_000).expect("list");
                assert!(!more);
                assert_eq!(
                    children.len() as u64,
                    inode.children,
                    "children count of {p:?}"
                );
                for c in children {
                    let mut cp = p.clone();
                    cp.push(c.name.clone());
                    stack.push((cp, c));
                }
                Kind::Dir
            }
            _ => Kind::File {
                holder: inode.under_construction.map(|u| u.holder),
                length: inode.length,
            },
        };
        out.insert(
            p,
            Node {
                kind,
                permission: inode.permission,
            },
        );
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rocksdb_state_machine_matches_the_model(
        batches in prop::collection::vec(prop::collection::vec(op_strategy(), 1..5), 1..40)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = StateMachine::open(dir.path()).expect("open state machine");
        let mut model = Model::new();
        let mut call = 0u64;
        for (i, ops) in batches.iter().enumerate() {
            let proposals = ops.iter().map(|op| {
                call += 1;
                Proposal { client: ClientId([7; 16]), call_id: call, op: to_op(op) }
            }).collect();
            let batch = Batch { ctx: ApplyCtx { now_ms: 1_000 + i as u64, lease_ms: 60_000 }, proposals };
            let results = sm.apply_for_test(i as u64 + 1, batch).expect("apply");
            prop_assert_eq!(results.len(), ops.len());
            for (op, got) in ops.iter().zip(results) {
                let want = model.apply(op);
                let got: Result<(), &'static str> = got.map(|_: OpOutput| ()).map_err(|e| e.kind());
                prop_assert_eq!(got, want, "op {:?}", op);
            }
        }
        prop_assert_eq!(stored_tree(&sm), model.nodes);
    }
}

/// A retried proposal (same client and call id) returns its first result and is not applied
/// again, even in a later entry.
#[test]
fn retried_call_applies_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = StateMachine::open(dir.path()).expect("open state machine");
    let create = Op::Create {
        path: NsPath::parse("/f").expect("path"),
        overwrite: false,
        create_parents: false,
        permission: 0o644,
        owner: "u".into(),
        group: None,
        policy: None,
        holder: "h".into(),
        block_size: 1 << 20,
    };
    let ctx = ApplyCtx {
        now_ms: 1,
        lease_ms: 1000,
    };
    let p = Proposal {
        client: ClientId([1; 16]),
        call_id: 9,
        op: create,
    };
    let first = sm
        .apply_for_test(
            1,
            Batch {
                ctx,
                proposals: vec![p.clone()],
            },
        )
        .expect("apply");
    let again = sm
        .apply_for_test(
            2,
            Batch {
                ctx,
                proposals: vec![p.clone()],
            },
        )
        .expect("apply");
    assert!(matches!(first[0], Ok(OpOutput::Inode(_))));
    assert_eq!(
        first, again,
        "a retry returns the first result, not AlreadyExists"
    );
    let other = Proposal { call_id: 10, ..p };
    let fresh = sm
        .apply_for_test(
            3,
            Batch {
                ctx,
                proposals: vec![other],
            },
        )
        .expect("apply");
    assert!(matches!(&fresh[0], Err(NsError::AlreadyExists(_))));
}
