//! Property test: random operation sequences run against the plain reference model of the
//! namespace (`raftfs_core::model`) and against the real RocksDB state machine (several
//! operations per entry, so that the write overlay inside one apply is exercised too). Every
//! result and the final tree must agree.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use raftfs_core::model::{Kind, Model, ModelOp, Node, P, ns};
use raftfs_metaserver::journal::rocks::LiveKv;
use raftfs_metaserver::journal::state_machine::StateMachine;
use raftfs_metaserver::journal::{Batch, CallId, ClientId, Proposal};
use raftfs_metaserver::namespace::kv::{Cf, KvRead};
use raftfs_metaserver::namespace::{
    ApplyCtx, Inode, InodeId, InodeKind, NsError, NsPath, Op, OpOutput, reclaim, tree,
};

/// Operations over a small universe of names, so that they collide often.
fn path_strategy() -> impl Strategy<Value = P> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..4)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

fn holder_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["h1", "h2"]).prop_map(str::to_owned)
}

fn op_strategy() -> impl Strategy<Value = ModelOp> {
    prop_oneof![
        3 => (path_strategy(), any::<bool>()).prop_map(|(p, parents)| ModelOp::Mkdir { p, parents }),
        3 => (path_strategy(), any::<bool>(), holder_strategy()).prop_map(|(p, overwrite, holder)| ModelOp::Create { p, overwrite, holder }),
        2 => (path_strategy(), holder_strategy(), prop::sample::select(vec![0u64, 0, 0, 7])).prop_map(|(p, holder, length)| ModelOp::Complete { p, holder, length }),
        3 => (path_strategy(), path_strategy(), any::<bool>()).prop_map(|(src, dst, overwrite)| ModelOp::Rename { src, dst, overwrite }),
        2 => (path_strategy(), any::<bool>()).prop_map(|(p, recursive)| ModelOp::Delete { p, recursive }),
        1 => (path_strategy(), prop::sample::select(vec![0o700u16, 0o644, 0o10000])).prop_map(|(p, permission)| ModelOp::Chmod { p, permission }),
    ]
}

/// The whole tree as stored, read back through the namespace's own listing.
fn stored_tree(sm: &StateMachine) -> BTreeMap<P, Node> {
    let db = sm.shared().db();
    let mut out = BTreeMap::new();
    let mut stack: Vec<(P, Inode)> = vec![(
        Vec::new(),
        tree::stat(&LiveKv(&db), &NsPath::root()).expect("root"),
    )];
    while let Some((p, inode)) = stack.pop() {
        let kind = match inode.kind {
            InodeKind::Directory => {
                let (children, more) =
                    tree::list(&LiveKv(&db), &ns(&p), None, 10_000).expect("list");
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

    /// Reclaim steps of small budgets ride in some entries, after the entry's operations
    /// (as the active's reclaim worker's entries interleave with clients'): they never change
    /// what clients see, and once every detached tree is reclaimed no record is left that
    /// the tree does not reach.
    #[test]
    fn rocksdb_state_machine_matches_the_model(
        batches in prop::collection::vec(
            (prop::collection::vec(op_strategy(), 1..5), prop::option::of(0u64..4)),
            1..40,
        )
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = StateMachine::open(dir.path(), Default::default()).expect("open state machine");
        let mut model = Model::new();
        let mut call = 0u64;
        let mut index = 0u64;
        for (i, (ops, reclaim)) in batches.iter().enumerate() {
            let mut proposals: Vec<Proposal> = ops.iter().map(|op| {
                call += 1;
                Proposal { client: ClientId([7; 16]), call_id: CallId(call), op: op.to_op(), access: None }
            }).collect();
            if let Some(budget) = reclaim {
                proposals.push(reclaim_step(*budget));
            }
            let batch = Batch { ctx: ApplyCtx { now_ms: 1_000 + i as u64, lease_ms: 60_000 }, proposals };
            index += 1;
            let results = sm.apply_for_test(index, batch).expect("apply");
            prop_assert_eq!(results.len(), ops.len() + usize::from(reclaim.is_some()));
            for (op, got) in ops.iter().zip(&results) {
                let want = model.apply(op);
                let got: Result<(), &'static str> = got.as_ref().map(|_: &OpOutput| ()).map_err(|e| e.kind());
                prop_assert_eq!(got, want, "op {:?}", op);
            }
            if reclaim.is_some() {
                prop_assert!(matches!(results.last(), Some(Ok(OpOutput::Removed(_)))), "{:?}", results.last());
            }
        }
        prop_assert_eq!(stored_tree(&sm), model.nodes.clone());
        // Reclaim the rest, then no orphan: every stored inode is in the tree.
        while reclaim::pending(&LiveKv(&sm.shared().db())).expect("pending") {
            index += 1;
            let batch = Batch { ctx: ApplyCtx { now_ms: 10_000, lease_ms: 60_000 }, proposals: vec![reclaim_step(3)] };
            sm.apply_for_test(index, batch).expect("apply");
            prop_assert!(index < 10_000, "reclaim makes no progress");
        }
        prop_assert_eq!(stored_tree(&sm), model.nodes);
        let stored = stored_ids(&sm);
        let reachable = reachable_ids(&sm);
        prop_assert!(stored.is_subset(&reachable), "orphans: {:?}", stored.difference(&reachable).collect::<Vec<_>>());
    }
}

fn reclaim_step(budget: u64) -> Proposal {
    Proposal {
        client: ClientId::default(),
        call_id: CallId::UNCACHED,
        op: Op::Reclaim { budget },
        access: None,
    }
}

/// Every inode id that has a record.
fn stored_ids(sm: &StateMachine) -> BTreeSet<InodeId> {
    let db = sm.shared().db();
    let kv = LiveKv(&db);
    let mut out = BTreeSet::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv
            .scan(Cf::Inodes, &[], after.as_deref(), 256)
            .expect("scan");
        if page.is_empty() {
            return out;
        }
        after = page.last().map(|(k, _)| k.clone());
        out.extend(page.iter().filter_map(|(k, _)| InodeId::from_be_slice(k)));
    }
}

/// The ids of the root and of everything its listings reach.
fn reachable_ids(sm: &StateMachine) -> BTreeSet<InodeId> {
    let db = sm.shared().db();
    let kv = LiveKv(&db);
    let mut out = BTreeSet::new();
    let mut stack = vec![NsPath::root()];
    while let Some(p) = stack.pop() {
        let inode = tree::stat(&kv, &p).expect("stat");
        out.insert(inode.id);
        if inode.kind == InodeKind::Directory {
            let (children, _) = tree::list(&kv, &p, None, 10_000).expect("list");
            stack.extend(children.iter().map(|c| p.child(&c.name)));
        }
    }
    out
}

/// A retried proposal (same client and call id) returns its first result and is not applied
/// again, even in a later entry.
#[test]
fn retried_call_applies_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = StateMachine::open(dir.path(), Default::default()).expect("open state machine");
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
        call_id: CallId(9),
        op: create,
        access: None,
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
    let other = Proposal {
        call_id: CallId(10),
        ..p
    };
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
