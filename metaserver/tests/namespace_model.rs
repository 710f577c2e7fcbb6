//! Property test: random operation sequences run against the plain reference model of the
//! namespace (`raftfs_core::model`) and against the real RocksDB state machine (several
//! operations per entry, so that the write overlay inside one apply is exercised too). Every
//! result and the final tree must agree.

use std::collections::BTreeMap;

use proptest::prelude::*;
use raftfs_core::model::{Kind, Model, ModelOp, Node, P, ns};
use raftfs_metaserver::journal::rocks::LiveKv;
use raftfs_metaserver::journal::state_machine::StateMachine;
use raftfs_metaserver::journal::{Batch, CallId, ClientId, Proposal};
use raftfs_metaserver::namespace::{
    ApplyCtx, Inode, InodeKind, NsError, NsPath, Op, OpOutput, tree,
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
                Proposal { client: ClientId([7; 16]), call_id: CallId(call), op: op.to_op() }
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
        call_id: CallId(9),
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
