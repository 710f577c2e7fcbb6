//! Snapshots over the in-memory store: the operations and their refusals, reads that never
//! change under later writes (a property over random operation sequences), blocks kept while
//! a snapshot needs them and collected after.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::id::BlockServerId;
use crate::namespace::blocks;
use crate::namespace::kv::{MemKv, Txn};
use crate::namespace::ops::XattrExpect;
use crate::namespace::{ApplyError, InodeKind, Op, reclaim, tree, walk};

const BLOCK: u64 = 1 << 20;

fn p(s: &str) -> NsPath {
    NsPath::parse(s).expect("test path is valid")
}

/// A namespace over the in-memory store whose clock moves one millisecond per operation.
struct Ns {
    kv: MemKv,
    now: u64,
}

/// What a test compares of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: InodeKind,
    permission: u16,
    mtime_ms: u64,
    length: u64,
    xattrs: Vec<(String, Vec<u8>)>,
    groups: Vec<GroupId>,
}

impl Ns {
    fn new() -> Self {
        Self {
            kv: MemKv::new(),
            now: 1_000,
        }
    }

    fn apply(&mut self, op: Op) -> std::result::Result<OpOutput, NsError> {
        self.now += 1;
        let ctx = ApplyCtx {
            now_ms: self.now,
            lease_ms: 60_000,
        };
        let mut txn = Txn::new(&self.kv);
        let result = tree::apply(&mut txn, &ctx, &op);
        let writes = txn.into_writes();
        match result {
            Ok(out) => {
                self.kv.commit(writes);
                Ok(out)
            }
            Err(ApplyError::Ns(e)) => Err(e),
            Err(ApplyError::Store(e)) => panic!("store error in {}: {e}", op.name()),
        }
    }

    fn ok(&mut self, op: Op) -> OpOutput {
        let name = op.name();
        self.apply(op)
            .unwrap_or_else(|e| panic!("{name} refused: {e}"))
    }

    fn mkdir(&mut self, path: &str) -> std::result::Result<OpOutput, NsError> {
        self.apply(Op::Mkdir {
            path: p(path),
            parents: true,
            permission: 0o755,
            owner: "alice".into(),
            group: None,
        })
    }

    /// Writes `path` (over whatever file is there) with `groups` block groups of `len` bytes.
    fn write(&mut self, path: &str, groups: u64, len: u64) -> std::result::Result<(), NsError> {
        self.create(path)?;
        self.extend(path, 0, groups, len)
    }

    /// Creates `path` (over whatever file is there), being written by `w`.
    fn create(&mut self, path: &str) -> std::result::Result<(), NsError> {
        self.apply(Op::Create {
            path: p(path),
            overwrite: true,
            create_parents: false,
            permission: 0o644,
            owner: "alice".into(),
            group: None,
            policy: None,
            holder: "w".into(),
            block_size: BLOCK,
        })
        .map(drop)
    }

    /// Creates `path` (over whatever file is there) with one open block group.
    fn open(&mut self, path: &str) -> std::result::Result<(), NsError> {
        self.create(path)?;
        self.add_block(path, 0)
    }

    /// Closes `path`'s open group at `at` bytes and opens the next.
    fn add_block(&mut self, path: &str, at: u64) -> std::result::Result<(), NsError> {
        self.apply(Op::AddBlock {
            path: p(path),
            holder: "w".into(),
            file_length: at,
            targets: vec![BlockServerId(1), BlockServerId(2), BlockServerId(3)],
        })
        .map(drop)
    }

    fn extend(
        &mut self,
        path: &str,
        from: u64,
        groups: u64,
        len: u64,
    ) -> std::result::Result<(), NsError> {
        let mut at = from;
        for _ in 0..groups {
            self.add_block(path, at)?;
            at += len;
        }
        self.apply(Op::Complete {
            path: p(path),
            holder: "w".into(),
            length: at,
        })
        .map(drop)
    }

    fn append(&mut self, path: &str, len: u64) -> std::result::Result<(), NsError> {
        let Ok(file) = tree::stat(&self.kv, &p(path)) else {
            return Ok(());
        };
        self.apply(Op::Append {
            path: p(path),
            holder: "w".into(),
        })?;
        self.extend(path, file.length, 1, len)
    }

    fn reclaim_all(&mut self, budget: u64) {
        while reclaim::pending(&self.kv).expect("pending") {
            self.ok(Op::Reclaim { budget });
        }
    }

    /// Every entry at or below `path` (read through `.snapshot` when it has one), by path
    /// relative to it.
    fn dump(&self, path: &str) -> BTreeMap<String, Entry> {
        let mut out = BTreeMap::new();
        read(&self.kv, &p(path), |kv, at| {
            let base = at.to_string();
            walk::walk(kv, at, None, usize::MAX, |full, node| {
                let rel = full
                    .strip_prefix(base.as_str())
                    .unwrap_or(full)
                    .trim_start_matches('/')
                    .to_owned();
                let xattrs = tree::get_xattrs(kv, &p(full), &[])?;
                let groups = match node.kind {
                    InodeKind::File => blocks::of_file(kv, node)?
                        .into_iter()
                        .map(|g| g.id)
                        .collect(),
                    _ => Vec::new(),
                };
                out.insert(
                    rel,
                    Entry {
                        kind: node.kind,
                        permission: node.permission,
                        mtime_ms: node.mtime_ms,
                        length: node.length,
                        xattrs,
                        groups,
                    },
                );
                Ok(())
            })
            .map(drop)
        })
        .expect("dump");
        out
    }

    fn groups_stored(&self) -> BTreeSet<GroupId> {
        blocks::page(&self.kv, None, usize::MAX)
            .expect("groups")
            .into_iter()
            .map(|g| g.id)
            .collect()
    }

    fn count(&self, cf: Cf) -> usize {
        self.kv.scan(cf, &[], None, usize::MAX).expect("scan").len()
    }
}

fn kind(r: std::result::Result<OpOutput, NsError>) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(e) => e.kind(),
    }
}

fn snap(path: &str, name: &str) -> Op {
    Op::CreateSnapshot {
        path: p(path),
        name: Some(name.into()),
    }
}

#[test]
fn snapshots_are_made_named_listed_and_refused_as_hdfs_does() {
    let mut ns = Ns::new();
    ns.mkdir("/d/e").expect("mkdir");
    ns.mkdir("/other").expect("mkdir");
    assert_eq!(
        kind(ns.apply(snap("/d", "s1"))),
        "Snapshot",
        "not snapshottable"
    );
    ns.ok(Op::AllowSnapshot { path: p("/d") });
    ns.ok(Op::AllowSnapshot { path: p("/d") });
    assert_eq!(
        kind(ns.apply(Op::AllowSnapshot { path: p("/d/e") })),
        "Snapshot",
        "nested below"
    );
    assert_eq!(
        kind(ns.apply(Op::AllowSnapshot { path: p("/") })),
        "Snapshot",
        "nested above"
    );
    ns.ok(snap("/d", "s1"));
    assert_eq!(kind(ns.apply(snap("/d", "s1"))), "AlreadyExists");
    assert_eq!(kind(ns.apply(snap("/d", ".snapshot"))), "Snapshot");
    assert_eq!(kind(ns.apply(snap("/d", "a/b"))), "InvalidArgument");
    let OpOutput::Inode(root) = ns.ok(Op::CreateSnapshot {
        path: p("/d"),
        name: None,
    }) else {
        panic!("no root");
    };
    assert!(root.name.starts_with("s1970"), "{}", root.name);
    ns.ok(Op::RenameSnapshot {
        path: p("/d"),
        from: root.name.clone(),
        to: "s2".into(),
    });
    assert_eq!(
        kind(ns.apply(Op::RenameSnapshot {
            path: p("/d"),
            from: "s2".into(),
            to: "s1".into(),
        })),
        "AlreadyExists"
    );
    let (listed, more) = list_snapshots(&ns.kv, &p("/d/.snapshot"), None, 10)
        .expect("list")
        .expect("a .snapshot path");
    let names: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!((names, more), (vec!["s1", "s2"], false));

    // Snapshots are read-only; `.snapshot` is no name for an entry.
    assert_eq!(kind(ns.mkdir("/d/.snapshot/s1/x")), "Snapshot");
    assert_eq!(kind(ns.mkdir("/other/.snapshot")), "Snapshot");
    assert_eq!(
        kind(ns.apply(Op::Delete {
            path: p("/d/.snapshot/s1/e"),
            recursive: true
        })),
        "Snapshot"
    );
    // A directory with snapshots, or one holding it, stays.
    for path in ["/d", "/"] {
        let r = ns.apply(Op::Delete {
            path: p(path),
            recursive: true,
        });
        assert!(matches!(kind(r), "Snapshot" | "RootNotAllowed"), "{path}");
    }
    assert_eq!(
        kind(ns.apply(Op::DisallowSnapshot { path: p("/d") })),
        "Snapshot"
    );
    assert_eq!(
        kind(ns.apply(Op::DeleteSnapshot {
            path: p("/d"),
            name: "nope".into()
        })),
        "NotFound"
    );
    for name in ["s1", "s2"] {
        ns.ok(Op::DeleteSnapshot {
            path: p("/d"),
            name: name.into(),
        });
    }
    ns.ok(Op::DisallowSnapshot { path: p("/d") });
    ns.ok(Op::AllowSnapshot { path: p("/d/e") });
    ns.ok(Op::Delete {
        path: p("/d"),
        recursive: true,
    });
    ns.reclaim_all(4);
    assert!(snapshottable(&ns.kv).expect("dirs").is_empty());
}

#[test]
fn taking_a_snapshot_writes_the_same_few_records_whatever_the_tree() {
    let mut ns = Ns::new();
    ns.mkdir("/d").expect("mkdir");
    for i in 0..300 {
        ns.write(&format!("/d/f{i}"), 1, 10).expect("write");
    }
    ns.ok(Op::AllowSnapshot { path: p("/d") });
    let mut txn = Txn::new(&ns.kv);
    let ctx = ApplyCtx {
        now_ms: 5_000,
        lease_ms: 1,
    };
    tree::apply(&mut txn, &ctx, &snap("/d", "s")).expect("snapshot");
    assert_eq!(txn.len(), 5, "name, info, order, directory record, counter");
}

#[test]
fn a_snapshot_shows_files_deleted_renamed_and_rewritten_since_and_keeps_their_blocks() {
    let mut ns = Ns::new();
    ns.mkdir("/d/sub").expect("mkdir");
    ns.mkdir("/out").expect("mkdir");
    ns.write("/d/sub/a", 2, 100).expect("write");
    ns.write("/d/b", 1, 7).expect("write");
    ns.ok(Op::SetXattr {
        path: p("/d/b"),
        name: "user.k".into(),
        value: b"v1".to_vec(),
        expect: XattrExpect::Any,
    });
    ns.ok(Op::AllowSnapshot { path: p("/d") });
    ns.ok(snap("/d", "s1"));
    let at_s1 = ns.dump("/d");
    let kept: BTreeSet<GroupId> = at_s1.values().flat_map(|e| e.groups.clone()).collect();
    assert_eq!(kept.len(), 3);

    // The subtree leaves the snapshot's directory, then changes where it went.
    ns.ok(Op::Rename {
        src: p("/d/sub"),
        dst: p("/out/sub"),
        overwrite: false,
    });
    ns.append("/out/sub/a", 5).expect("append");
    ns.ok(Op::SetPermission {
        path: p("/out/sub/a"),
        permission: 0o600,
    });
    ns.write("/d/b", 1, 3).expect("rewrite");
    ns.ok(Op::SetXattr {
        path: p("/d/b"),
        name: "user.k".into(),
        value: b"v2".to_vec(),
        expect: XattrExpect::Any,
    });
    ns.ok(Op::Delete {
        path: p("/out/sub"),
        recursive: true,
    });
    ns.reclaim_all(2);
    ns.write("/d/new", 1, 1).expect("write");

    assert_eq!(ns.dump("/d/.snapshot/s1"), at_s1, "the snapshot as it was");
    assert!(kept.is_subset(&ns.groups_stored()), "its blocks are kept");
    let live = ns.dump("/d");
    assert!(live.contains_key("new") && !live.contains_key("sub"));

    ns.ok(Op::DeleteSnapshot {
        path: p("/d"),
        name: "s1".into(),
    });
    assert_eq!(
        kind(ns.apply(Op::Mkdir {
            path: p("/d/.snapshot/s1"),
            parents: false,
            permission: 0o755,
            owner: "a".into(),
            group: None
        })),
        "Snapshot"
    );
    ns.reclaim_all(3);
    let live_groups: BTreeSet<GroupId> = ns
        .dump("/")
        .values()
        .flat_map(|e| e.groups.clone())
        .collect();
    assert_eq!(
        ns.groups_stored(),
        live_groups,
        "collected with the snapshot"
    );
    for cf in [Cf::SnapshotRecords, Cf::SnapshotChanges] {
        assert_eq!(ns.count(cf), 0, "{}", cf.name());
    }
}

/// One step of a random history: what it does, on which of a few paths.
#[derive(Debug, Clone)]
enum Step {
    Mkdir(usize),
    Write(usize, u8),
    Append(usize),
    Rename(usize, usize),
    Delete(usize),
    Xattr(usize, u8),
    RemoveXattr(usize),
    Chmod(usize, u16),
    Touch(usize),
    Snapshot,
    DeleteSnapshot(usize),
    Reclaim,
}

const PATHS: [&str; 12] = [
    "/d/a", "/d/b", "/d/a/x", "/d/a/y", "/d/b/x", "/d/a/x/z", "/out/a", "/out/b", "/out/a/x",
    "/d/c", "/out/c", "/d/b/y",
];

fn step() -> impl Strategy<Value = Step> {
    let at = 0..PATHS.len();
    prop_oneof![
        at.clone().prop_map(Step::Mkdir),
        (at.clone(), 1u8..4).prop_map(|(a, n)| Step::Write(a, n)),
        at.clone().prop_map(Step::Append),
        (at.clone(), at.clone()).prop_map(|(a, b)| Step::Rename(a, b)),
        (at.clone(), at.clone()).prop_map(|(a, b)| Step::Rename(b, a)),
        at.clone().prop_map(Step::Delete),
        (at.clone(), 0u8..3).prop_map(|(a, v)| Step::Xattr(a, v)),
        at.clone().prop_map(Step::RemoveXattr),
        (at.clone(), 0u16..0o777).prop_map(|(a, m)| Step::Chmod(a, m)),
        at.clone().prop_map(Step::Touch),
        Just(Step::Snapshot),
        Just(Step::Snapshot),
        (0usize..8).prop_map(Step::DeleteSnapshot),
        Just(Step::Reclaim),
    ]
}

fn run(ns: &mut Ns, step: &Step, taken: &mut Vec<(String, BTreeMap<String, Entry>)>) {
    let path = |i: &usize| PATHS[*i];
    // Refusals (a missing parent, a name taken) are part of the history: they change nothing.
    let _ = match step {
        Step::Mkdir(a) => ns.mkdir(path(a)).map(drop),
        Step::Write(a, n) => ns.write(path(a), u64::from(*n), 10),
        Step::Append(a) => ns.append(path(a), 3),
        Step::Rename(a, b) => ns
            .apply(Op::Rename {
                src: p(path(a)),
                dst: p(path(b)),
                overwrite: a % 2 == 0,
            })
            .map(drop),
        Step::Delete(a) => ns
            .apply(Op::Delete {
                path: p(path(a)),
                recursive: true,
            })
            .map(drop),
        Step::Xattr(a, v) => ns
            .apply(Op::SetXattr {
                path: p(path(a)),
                name: format!("user.k{}", v % 2),
                value: vec![*v; 3],
                expect: XattrExpect::Any,
            })
            .map(drop),
        Step::RemoveXattr(a) => ns
            .apply(Op::RemoveXattr {
                path: p(path(a)),
                name: "user.k0".into(),
            })
            .map(drop),
        Step::Chmod(a, m) => ns
            .apply(Op::SetPermission {
                path: p(path(a)),
                permission: *m,
            })
            .map(drop),
        Step::Touch(a) => ns
            .apply(Op::SetTimes {
                path: p(path(a)),
                mtime_ms: Some(77),
                atime_ms: None,
            })
            .map(drop),
        Step::Snapshot => {
            let name = format!("s{}", ns.now);
            ns.ok(snap("/d", &name));
            taken.push((name, ns.dump("/d")));
            Ok(())
        }
        Step::DeleteSnapshot(i) => {
            if !taken.is_empty() {
                let (name, _) = taken.remove(i % taken.len());
                ns.ok(Op::DeleteSnapshot {
                    path: p("/d"),
                    name,
                });
            }
            Ok(())
        }
        Step::Reclaim => {
            if reclaim::pending(&ns.kv).expect("pending") {
                ns.ok(Op::Reclaim { budget: 3 });
            }
            Ok(())
        }
    };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Whatever happens after a snapshot (writes, appends, renames into and out of its
    /// directory, deletes, attributes, other snapshots taken and deleted, reclaim steps),
    /// reading it gives what the directory held when it was taken, blocks included; and
    /// once every snapshot is deleted and collected, nothing of them is left.
    #[test]
    fn snapshot_reads_never_change_under_later_writes(steps in prop::collection::vec(step(), 1..60)) {
        let mut ns = Ns::new();
        ns.mkdir("/d").expect("mkdir");
        ns.mkdir("/out").expect("mkdir");
        ns.ok(Op::AllowSnapshot { path: p("/d") });
        let mut taken = Vec::new();
        for step in &steps {
            run(&mut ns, step, &mut taken);
            let stored = ns.groups_stored();
            for (name, then) in &taken {
                let now = ns.dump(&format!("/d/.snapshot/{name}"));
                prop_assert_eq!(&now, then, "snapshot {} after {:?}", name, step);
                for g in then.values().flat_map(|e| &e.groups) {
                    prop_assert!(stored.contains(g), "group {} of {} was dropped", g, name);
                }
            }
        }
        for (name, _) in taken.drain(..) {
            ns.ok(Op::DeleteSnapshot { path: p("/d"), name });
        }
        ns.reclaim_all(5);
        let live: BTreeSet<GroupId> =
            ns.dump("/").values().flat_map(|e| e.groups.clone()).collect();
        prop_assert_eq!(ns.groups_stored(), live);
        prop_assert_eq!(ns.count(Cf::SnapshotRecords), 0);
        prop_assert_eq!(ns.count(Cf::SnapshotChanges), 0);
    }
}

/// `dump`'s keys without the leading `/` (the diff's relative paths; `""` the directory).
fn relative(tree: BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    tree.into_iter()
        .map(|(k, v)| (k.trim_start_matches('/').to_owned(), v))
        .collect()
}

fn under(path: &str, root: &str) -> bool {
    root.is_empty() || path == root || path.starts_with(&format!("{root}/"))
}

/// The whole diff, page by page (`limit` changes a page).
fn full_diff(ns: &Ns, from: &str, to: &str, limit: usize) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = diff(&ns.kv, &p("/d"), from, to, cursor.as_deref(), limit).expect("diff");
        out.extend(page.entries);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Applies a diff to `old` as `copy --diff` does: deletions and rename sources taken out
/// deepest first (a deletion inside a moved subtree goes before the move, a move out of a
/// deleted subtree before the deletion), the moved subtrees put at their targets shallowest
/// first, then what was created (whole subtrees) and modified (the entry alone) copied
/// from `new`.
fn apply_diff(
    old: &BTreeMap<String, Entry>,
    new: &BTreeMap<String, Entry>,
    entries: &[DiffEntry],
) -> BTreeMap<String, Entry> {
    let mut tree = old.clone();
    let mut out: Vec<&DiffEntry> = entries
        .iter()
        .filter(|e| matches!(e.kind, DiffKind::Deleted | DiffKind::Renamed))
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
    let mut moved = Vec::new();
    for e in out {
        let taken: Vec<(String, Entry)> = tree
            .iter()
            .filter(|(k, _)| under(k, &e.path))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tree.retain(|k, _| !under(k, &e.path));
        if let Some(target) = &e.target {
            moved.push((target.clone(), e.path.clone(), taken));
        }
    }
    moved.sort_by_key(|(t, _, _)| t.matches('/').count());
    for (target, source, taken) in moved {
        for (k, v) in taken {
            tree.insert(format!("{target}{}", &k[source.len()..]), v);
        }
    }
    for e in entries {
        match e.kind {
            DiffKind::Created => {
                for (k, v) in new.iter().filter(|(k, _)| under(k, &e.path)) {
                    tree.insert(k.clone(), v.clone());
                }
            }
            DiffKind::Modified => {
                if let Some(v) = new.get(&e.path) {
                    tree.insert(e.path.clone(), v.clone());
                }
            }
            _ => {}
        }
    }
    tree
}

#[test]
fn a_diff_reports_creations_deletions_modifications_and_renames() {
    let mut ns = Ns::new();
    ns.mkdir("/d/keep").expect("mkdir");
    ns.mkdir("/out").expect("mkdir");
    ns.write("/d/f", 1, 10).expect("write");
    ns.write("/d/g", 1, 10).expect("write");
    ns.write("/d/keep/h", 1, 10).expect("write");
    ns.ok(Op::AllowSnapshot { path: p("/d") });
    ns.ok(snap("/d", "s1"));
    ns.append("/d/f", 5).expect("append");
    ns.ok(Op::Rename {
        src: p("/d/g"),
        dst: p("/d/keep/g2"),
        overwrite: false,
    });
    ns.ok(Op::Rename {
        src: p("/d/keep/h"),
        dst: p("/out/h"),
        overwrite: false,
    });
    ns.mkdir("/d/new/deep").expect("mkdir");
    ns.ok(snap("/d", "s2"));
    let mut got = full_diff(&ns, "s1", "s2", 100);
    got.sort();
    let e = |kind, path: &str, target: Option<&str>| DiffEntry {
        kind,
        path: path.into(),
        target: target.map(Into::into),
        content: path == "f",
    };
    assert_eq!(
        got,
        vec![
            e(DiffKind::Created, "new", None),
            e(DiffKind::Deleted, "keep/h", None),
            e(DiffKind::Modified, "", None),
            e(DiffKind::Modified, "f", None),
            e(DiffKind::Modified, "keep", None),
            e(DiffKind::Renamed, "g", Some("keep/g2")),
        ]
    );
    // Against the live tree, and refusals.
    ns.ok(Op::SetPermission {
        path: p("/d/keep/g2"),
        permission: 0o600,
    });
    assert!(full_diff(&ns, "s2", ".", 100).contains(&e(DiffKind::Modified, "keep/g2", None)));
    assert!(matches!(
        diff(&ns.kv, &p("/d"), "s1", "nope", None, 10),
        Err(ApplyError::Ns(NsError::NotFound(_)))
    ));
    assert!(matches!(
        diff(&ns.kv, &p("/out"), "s1", "s2", None, 10),
        Err(ApplyError::Ns(NsError::Snapshot(_)))
    ));
    assert!(matches!(
        diff(&ns.kv, &p("/d"), "s1", "s2", Some(b"junk"), 10),
        Err(ApplyError::Ns(NsError::InvalidArgument(_)))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// For random operations between two snapshots, the diff applied to the first yields
    /// exactly the second (names, kinds, sizes, attributes), whether read whole or in pages
    /// of a few changes, to a snapshot or to the live tree; and the reverse diff takes the
    /// second back to the first.
    #[test]
    fn a_diff_applied_to_the_older_snapshot_yields_the_newer(
        before in prop::collection::vec(step(), 0..25),
        between in prop::collection::vec(step(), 1..40),
        limit in 1usize..6,
    ) {
        let mut ns = Ns::new();
        ns.mkdir("/d").expect("mkdir");
        ns.mkdir("/out").expect("mkdir");
        ns.ok(Op::AllowSnapshot { path: p("/d") });
        let mut taken = Vec::new();
        let no_snapshots = |s: &&Step| !matches!(s, Step::Snapshot | Step::DeleteSnapshot(_));
        for step in before.iter().filter(no_snapshots) {
            run(&mut ns, step, &mut taken);
        }
        ns.ok(snap("/d", "a"));
        for step in between.iter().filter(no_snapshots) {
            run(&mut ns, step, &mut taken);
        }
        ns.ok(snap("/d", "b"));
        let (old, new) = (relative(ns.dump("/d/.snapshot/a")), relative(ns.dump("/d/.snapshot/b")));
        let whole = full_diff(&ns, "a", "b", 10_000);
        prop_assert_eq!(&apply_diff(&old, &new, &whole), &new, "{:#?}", whole);
        let mut paged = full_diff(&ns, "a", "b", limit);
        let mut sorted = whole.clone();
        paged.sort();
        sorted.sort();
        prop_assert_eq!(paged, sorted);
        let live = relative(ns.dump("/d"));
        prop_assert_eq!(&apply_diff(&old, &live, &full_diff(&ns, "a", ".", limit)), &live);
        let back = full_diff(&ns, "b", "a", limit);
        prop_assert_eq!(&apply_diff(&new, &old, &back), &old, "{:#?}", back);
    }
}

// ------------------------------------------------------------------ cases a review found

fn del(ns: &mut Ns, path: &str, name: &str) {
    ns.ok(Op::DeleteSnapshot {
        path: p(path),
        name: name.into(),
    });
}

fn mv(ns: &mut Ns, a: &str, b: &str) {
    ns.ok(Op::Rename {
        src: p(a),
        dst: p(b),
        overwrite: false,
    });
}

fn xattr(ns: &mut Ns, path: &str, v: &[u8]) {
    ns.ok(Op::SetXattr {
        path: p(path),
        name: "user.k".into(),
        value: v.to_vec(),
        expect: XattrExpect::Any,
    });
}

/// Renaming the snapshottable directory itself leaves its snapshots readable (they are
/// read from the directory down, not through the entries above it).
#[test]
fn rename_of_the_snapshottable_directory() {
    let mut ns = Ns::new();
    ns.mkdir("/x/A").expect("mkdir");
    ns.write("/x/A/f", 1, 10).expect("write");
    ns.ok(Op::AllowSnapshot { path: p("/x/A") });
    ns.ok(snap("/x/A", "s1"));
    let at_s1 = ns.dump("/x/A/.snapshot/s1");
    mv(&mut ns, "/x/A", "/x/B");
    let r = read(&ns.kv, &p("/x/B/.snapshot/s1"), |kv, at| tree::stat(kv, at));
    assert!(
        r.is_ok(),
        "snapshot unreadable after renaming its directory: {r:?}"
    );
    assert_eq!(ns.dump("/x/B/.snapshot/s1"), at_s1);
}

/// Same, with the old name taken by another directory, old or made after the snapshot.
#[test]
fn rename_of_the_snapshottable_directory_then_name_reused() {
    let mut ns = Ns::new();
    ns.mkdir("/x/A").expect("mkdir");
    ns.mkdir("/x/other/zzz").expect("mkdir");
    ns.write("/x/A/f", 1, 10).expect("write");
    ns.ok(Op::AllowSnapshot { path: p("/x/A") });
    ns.ok(snap("/x/A", "s1"));
    mv(&mut ns, "/x/A", "/x/B");
    mv(&mut ns, "/x/other", "/x/A");
    let names = |ns: &Ns| {
        read(&ns.kv, &p("/x/B/.snapshot/s1"), |kv, at| {
            tree::list(kv, at, None, 10)
        })
        .expect("list")
        .0
        .into_iter()
        .map(|i| i.name)
        .collect::<Vec<_>>()
    };
    assert_eq!(names(&ns), ["f"], "not the directory now at the old name");
    ns.mkdir("/y").expect("mkdir");
    mv(&mut ns, "/x/A", "/y/other");
    ns.mkdir("/x/A").expect("mkdir");
    assert_eq!(names(&ns), ["f"], "not a directory made after the snapshot");
}

/// A file shown by snapshot s1 of /A moves into /B, which has snapshots of its own; B's
/// snapshots are deleted; what then happens to the file is still saved for s1 (a moved
/// inode carries its own escape mark).
#[test]
fn moved_into_another_protected_subtree() {
    let mut ns = Ns::new();
    ns.mkdir("/A").expect("mkdir");
    ns.mkdir("/B").expect("mkdir");
    ns.write("/A/f", 2, 10).expect("write");
    xattr(&mut ns, "/A/f", b"v1");
    ns.ok(Op::AllowSnapshot { path: p("/A") });
    ns.ok(Op::AllowSnapshot { path: p("/B") });
    ns.ok(snap("/A", "s1"));
    ns.ok(snap("/B", "t1"));
    let at_s1 = ns.dump("/A/.snapshot/s1");
    let kept: BTreeSet<GroupId> = at_s1.values().flat_map(|e| e.groups.clone()).collect();
    mv(&mut ns, "/A/f", "/B/f");
    del(&mut ns, "/B", "t1");
    ns.reclaim_all(4);
    xattr(&mut ns, "/B/f", b"v2");
    let now = ns.dump("/A/.snapshot/s1");
    assert_eq!(now, at_s1, "s1 changed");
    ns.ok(Op::Delete {
        path: p("/B/f"),
        recursive: false,
    });
    assert!(kept.is_subset(&ns.groups_stored()), "s1's groups dropped");
}

/// One snapshottable directory: a directory E escapes /A (marked s1), s2 is taken, f (in s2)
/// moves into E, s1 is deleted: E's mark no longer counts, f's own does, and s2 keeps
/// showing f as it was.
#[test]
fn moved_into_an_escaped_subtree() {
    let mut ns = Ns::new();
    ns.mkdir("/A/E").expect("mkdir");
    ns.write("/A/f", 2, 10).expect("write");
    xattr(&mut ns, "/A/f", b"v1");
    ns.ok(Op::AllowSnapshot { path: p("/A") });
    ns.ok(snap("/A", "s1"));
    mv(&mut ns, "/A/E", "/E");
    ns.ok(snap("/A", "s2"));
    let at_s2 = ns.dump("/A/.snapshot/s2");
    let kept: BTreeSet<GroupId> = at_s2.values().flat_map(|e| e.groups.clone()).collect();
    mv(&mut ns, "/A/f", "/E/f");
    del(&mut ns, "/A", "s1");
    ns.reclaim_all(4);
    xattr(&mut ns, "/E/f", b"v2");
    let now = ns.dump("/A/.snapshot/s2");
    ns.ok(Op::Delete {
        path: p("/E/f"),
        recursive: false,
    });
    let stored = ns.groups_stored();
    assert_eq!(now, at_s2, "s2 changed");
    assert!(kept.is_subset(&stored), "s2's groups dropped");
}

/// A file being written at the snapshot: its open group, closed later in place, does not
/// show in the snapshot with the bytes written after it.
#[test]
fn open_group_closed_after_the_snapshot() {
    let mut ns = Ns::new();
    ns.mkdir("/A").expect("mkdir");
    ns.ok(Op::AllowSnapshot { path: p("/A") });
    ns.open("/A/f").expect("open");
    ns.ok(snap("/A", "s1"));
    let f = |ns: &Ns| {
        read(&ns.kv, &p("/A/.snapshot/s1/f"), |kv, at| {
            let f = tree::stat(kv, at)?;
            Ok((
                f.length,
                blocks::readable_length(kv, &f)?,
                blocks::in_range(kv, &f, 0, u64::MAX, 10)?.0.len(),
            ))
        })
        .expect("read")
    };
    let before = f(&ns);
    ns.ok(Op::Complete {
        path: p("/A/f"),
        holder: "w".into(),
        length: 500,
    });
    let after = f(&ns);
    assert_eq!(before, after, "the snapshot's file grew");
}

/// A group only a deleted snapshot kept, dropped from a live file that a later snapshot
/// still protects: the collection's delete stays (the copy on first write does not take it
/// for the file dropping a group and keep it again).
#[test]
fn collection_re_retains_a_group() {
    let mut ns = Ns::new();
    ns.mkdir("/A").expect("mkdir");
    ns.ok(Op::AllowSnapshot { path: p("/A") });
    ns.open("/A/f").expect("open");
    ns.ok(snap("/A", "s1"));
    // Closed empty: the open group is dropped, and kept for s1.
    ns.ok(Op::Complete {
        path: p("/A/f"),
        holder: "w".into(),
        length: 0,
    });
    ns.ok(snap("/A", "s2"));
    del(&mut ns, "/A", "s1");
    ns.reclaim_all(4);
    let stored = ns.groups_stored();
    assert!(stored.is_empty(), "a group no snapshot shows is still kept");
}

/// An ancestor of the snapshottable directory moves below a directory made after the
/// snapshot (which the snapshot's view hides): the snapshot is still read.
#[test]
fn ancestor_moved_below_a_new_directory() {
    let mut ns = Ns::new();
    ns.mkdir("/x/A").expect("mkdir");
    ns.write("/x/A/f", 1, 10).expect("write");
    ns.ok(Op::AllowSnapshot { path: p("/x/A") });
    ns.ok(snap("/x/A", "s1"));
    ns.mkdir("/new").expect("mkdir");
    mv(&mut ns, "/x", "/new/x");
    let r = read(&ns.kv, &p("/new/x/A/.snapshot/s1"), |kv, at| {
        tree::stat(kv, at)
    });
    assert!(r.is_ok(), "{r:?}");
}
