//! Unit tests of every namespace operation and error path, over the in-memory store.

use super::blocks::GroupId;
use super::inode::ROOT_ID;
use super::kv::{KvRead, MemKv, Txn};
use super::*;

/// Block size of the files the tests create (1 MiB: a multiple of every policy's cell).
const BLOCK: u64 = 1 << 20;

/// A namespace over the in-memory store, with a clock the tests move.
pub(super) struct Ns {
    pub(super) kv: MemKv,
    now: u64,
}

/// Blockserver ids from numbers, for targets written as literals.
fn servers(ids: &[u64]) -> Vec<crate::id::BlockServerId> {
    ids.iter().copied().map(crate::id::BlockServerId).collect()
}

fn p(s: &str) -> NsPath {
    NsPath::parse(s).expect("test path is valid")
}

impl Ns {
    pub(super) fn new() -> Self {
        Self {
            kv: MemKv::new(),
            now: 1_000,
        }
    }

    fn ctx(&self) -> ApplyCtx {
        ApplyCtx {
            now_ms: self.now,
            lease_ms: 60_000,
        }
    }

    fn apply(&mut self, op: Op) -> Result<OpOutput, NsError> {
        self.apply_as(None, op)
    }

    /// [`Self::apply`] as `access` (permissions checked): a refusal leaves no write.
    fn apply_as(
        &mut self,
        access: Option<&permission::Access>,
        op: Op,
    ) -> Result<OpOutput, NsError> {
        let ctx = self.ctx();
        let mut txn = Txn::new(&self.kv);
        let result = tree::apply_as(&mut txn, &ctx, access, &op);
        let writes = txn.into_writes();
        match result {
            Ok(out) => {
                self.kv.commit(writes);
                Ok(out)
            }
            Err(ApplyError::Ns(e)) => {
                assert!(
                    writes.is_empty(),
                    "a refused {} left writes behind",
                    op.name()
                );
                Err(e)
            }
            Err(ApplyError::Store(e)) => panic!("store error: {e}"),
        }
    }

    pub(super) fn mkdir(&mut self, path: &str, parents: bool) -> Result<OpOutput, NsError> {
        self.apply(Op::Mkdir {
            path: p(path),
            parents,
            permission: 0o755,
            owner: "alice".into(),
            group: None,
        })
    }

    fn create(&mut self, path: &str, overwrite: bool, holder: &str) -> Result<OpOutput, NsError> {
        self.apply(Op::Create {
            path: p(path),
            overwrite,
            create_parents: false,
            permission: 0o644,
            owner: "alice".into(),
            group: None,
            policy: None,
            holder: holder.into(),
            block_size: BLOCK,
        })
    }

    fn add_block(
        &mut self,
        path: &str,
        holder: &str,
        file_length: u64,
        targets: &[u64],
    ) -> Result<OpOutput, NsError> {
        self.apply(Op::AddBlock {
            path: p(path),
            holder: holder.into(),
            file_length,
            targets: servers(targets),
        })
    }

    fn groups(&self, path: &str) -> Vec<blocks::BlockGroup> {
        let file = self.stat(path).expect("stat");
        blocks::of_file(&self.kv, &file).expect("groups")
    }

    fn complete(&mut self, path: &str, holder: &str, length: u64) -> Result<OpOutput, NsError> {
        self.apply(Op::Complete {
            path: p(path),
            holder: holder.into(),
            length,
        })
    }

    /// An empty, closed file.
    pub(super) fn file(&mut self, path: &str) {
        self.create(path, false, "w").expect("create");
        self.complete(path, "w", 0).expect("complete");
    }

    fn stat(&self, path: &str) -> Result<Inode, NsError> {
        match tree::stat(&self.kv, &p(path)) {
            Ok(i) => Ok(i),
            Err(ApplyError::Ns(e)) => Err(e),
            Err(ApplyError::Store(e)) => panic!("store error: {e}"),
        }
    }

    /// Applies `Op::Reclaim { budget }`, one entry at a time, until nothing is detached.
    /// Returns the inodes removed, the steps taken and the most writes one step made.
    fn reclaim_all(&mut self, budget: u64) -> (u64, u64, usize) {
        let (mut removed, mut steps, mut most) = (0, 0, 0);
        while reclaim::pending(&self.kv).expect("pending") {
            let ctx = self.ctx();
            let mut txn = Txn::new(&self.kv);
            let out = tree::apply(&mut txn, &ctx, &Op::Reclaim { budget }).expect("reclaim");
            let writes = txn.into_writes();
            most = most.max(writes.len());
            self.kv.commit(writes);
            let OpOutput::Removed(n) = out else {
                panic!("reclaim gave {out:?}");
            };
            removed += n;
            steps += 1;
        }
        (removed, steps, most)
    }

    fn names(&self, path: &str) -> Vec<String> {
        let (entries, _) = tree::list(&self.kv, &p(path), None, 10_000).expect("list");
        entries.into_iter().map(|i| i.name).collect()
    }

    fn kind(r: Result<OpOutput, NsError>) -> &'static str {
        match r {
            Ok(_) => "Ok",
            Err(e) => e.kind(),
        }
    }
}

#[test]
fn mkdir_with_and_without_parents() {
    let mut ns = Ns::new();
    assert_eq!(Ns::kind(ns.mkdir("/a/b", false)), "ParentNotFound");
    assert!(ns.mkdir("/a", false).is_ok());
    assert_eq!(Ns::kind(ns.mkdir("/a", false)), "AlreadyExists");
    assert!(ns.mkdir("/a/b/c/d", true).is_ok());
    assert!(
        ns.mkdir("/a/b/c/d", true).is_ok(),
        "mkdir -p of an existing directory succeeds"
    );
    assert_eq!(Ns::kind(ns.mkdir("/", false)), "AlreadyExists");
    assert!(ns.mkdir("/", true).is_ok());
    ns.file("/f");
    assert_eq!(Ns::kind(ns.mkdir("/f/x", false)), "NotADirectory");
    assert_eq!(Ns::kind(ns.mkdir("/f/x", true)), "NotADirectory");
    assert_eq!(Ns::kind(ns.mkdir("/f", true)), "AlreadyExists");
    let d = ns.stat("/a/b/c/d").expect("stat");
    assert_eq!(d.kind, InodeKind::Directory);
    assert_eq!(d.owner, "alice");
    assert_eq!(d.mtime_ms, 1_000);
    assert_eq!(ns.stat("/a").expect("stat").children, 1);
    assert_eq!(ns.stat("/").expect("stat").children, 2);
}

#[test]
fn ids_are_allocated_from_replicated_state() {
    let mut ns = Ns::new();
    ns.mkdir("/a", false).expect("mkdir");
    ns.mkdir("/b", false).expect("mkdir");
    let a = ns.stat("/a").expect("stat").id;
    let b = ns.stat("/b").expect("stat").id;
    assert_eq!(a, inode::FIRST_ALLOCATED_ID);
    assert_eq!(b, InodeId(a.0 + 1));
    assert_eq!(ns.stat("/").expect("stat").id, ROOT_ID);
}

#[test]
fn create_overwrite_and_leases() {
    let mut ns = Ns::new();
    assert_eq!(Ns::kind(ns.create("/d/f", false, "w1")), "ParentNotFound");
    ns.mkdir("/d", false).expect("mkdir");
    let f = ns.create("/d/f", false, "w1").expect("create");
    let OpOutput::Inode(f) = f else {
        panic!("inode expected")
    };
    assert_eq!(
        f.under_construction.as_ref().map(|u| u.holder.as_str()),
        Some("w1")
    );
    assert_eq!(Ns::kind(ns.create("/d/f", false, "w2")), "AlreadyExists");
    assert_eq!(Ns::kind(ns.create("/d/f", true, "w2")), "LeaseConflict");
    assert_eq!(Ns::kind(ns.create("/d", true, "w2")), "IsADirectory");
    assert_eq!(Ns::kind(ns.create("/", true, "w2")), "IsADirectory");
    // The lease runs out: another writer may overwrite.
    ns.now += 60_001;
    let OpOutput::Inode(g) = ns.create("/d/f", true, "w2").expect("overwrite") else {
        panic!()
    };
    assert_ne!(g.id, f.id, "an overwrite makes a new inode");
    assert_eq!(ns.stat("/d").expect("stat").children, 1);
    // create with parents
    ns.apply(Op::Create {
        path: p("/x/y/z"),
        overwrite: false,
        create_parents: true,
        permission: 0o644,
        owner: "bob".into(),
        group: Some("staff".into()),
        policy: None,
        holder: "w3".into(),
        block_size: BLOCK,
    })
    .expect("create -p");
    assert_eq!(ns.stat("/x/y").expect("stat").kind, InodeKind::Directory);
    assert_eq!(ns.stat("/x/y/z").expect("stat").group, "staff");
}

#[test]
fn complete_append_renew_recover() {
    let mut ns = Ns::new();
    ns.mkdir("/d", false).expect("mkdir");
    assert_eq!(Ns::kind(ns.complete("/d/f", "w1", 1)), "NotFound");
    assert_eq!(Ns::kind(ns.complete("/d", "w1", 1)), "IsADirectory");
    ns.create("/d/f", false, "w1").expect("create");
    assert_eq!(Ns::kind(ns.complete("/d/f", "w2", 1)), "LeaseConflict");
    assert_eq!(
        Ns::kind(ns.complete("/d/f", "w1", 42)),
        "InvalidArgument",
        "42 bytes without a block group"
    );
    ns.add_block("/d/f", "w1", 0, &[1, 2, 3])
        .expect("add block");
    let OpOutput::Inode(f) = ns.complete("/d/f", "w1", 42).expect("complete") else {
        panic!()
    };
    assert_eq!(f.length, 42);
    assert!(f.under_construction.is_none());
    assert_eq!(
        Ns::kind(ns.complete("/d/f", "w1", 1)),
        "NotUnderConstruction"
    );
    // append
    assert!(
        ns.apply(Op::Append {
            path: p("/d/f"),
            holder: "w2".into()
        })
        .is_ok()
    );
    assert_eq!(
        Ns::kind(ns.apply(Op::Append {
            path: p("/d/f"),
            holder: "w3".into()
        })),
        "LeaseConflict"
    );
    assert_eq!(
        Ns::kind(ns.apply(Op::Append {
            path: p("/d"),
            holder: "w3".into()
        })),
        "IsADirectory"
    );
    // renewal keeps w2's lease alive past its first expiry
    ns.now += 50_000;
    ns.apply(Op::RenewLease {
        holder: "w2".into(),
    })
    .expect("renew");
    ns.now += 50_000;
    assert_eq!(
        Ns::kind(ns.apply(Op::Append {
            path: p("/d/f"),
            holder: "w3".into()
        })),
        "LeaseConflict"
    );
    // and once it lapses, w3 takes the file over
    ns.now += 20_000;
    assert!(
        ns.apply(Op::Append {
            path: p("/d/f"),
            holder: "w3".into()
        })
        .is_ok()
    );
    // recover closes it
    let OpOutput::Inode(r) = ns
        .apply(Op::RecoverLease {
            path: p("/d/f"),
            last_group_length: None,
        })
        .expect("recover")
    else {
        panic!()
    };
    assert!(r.under_construction.is_none());
    assert_eq!(r.length, 42);
    assert_eq!(
        Ns::kind(ns.apply(Op::RecoverLease {
            path: p("/d/f"),
            last_group_length: None,
        })),
        "NotUnderConstruction"
    );
    assert!(
        ns.apply(Op::RenewLease {
            holder: "nobody".into()
        })
        .is_ok()
    );
    assert_eq!(
        Ns::kind(ns.apply(Op::RenewLease {
            holder: String::new()
        })),
        "InvalidArgument"
    );
}

/// A holder's lease record, as stored.
fn lease_of(ns: &Ns, holder: &str) -> Option<inode::LeaseRecord> {
    ns.kv
        .get(kv::Cf::Leases, holder.as_bytes())
        .expect("get")
        .map(|v| inode::decode("leases", &v).expect("a lease record"))
}

/// The count of files in a holder's lease record follows every way a file stops being
/// written (complete, delete, overwrite, takeover, recovery), and the record goes with the
/// holder's last file. The count is what tells an idle holder without a scan.
#[test]
fn a_lease_counts_its_holders_files_and_goes_with_the_last() {
    let mut ns = Ns::new();
    let files = |ns: &Ns, h: &str| lease_of(ns, h).map(|r| r.files);
    for f in ["/a", "/b", "/c"] {
        ns.create(f, false, "w").expect("create");
    }
    assert_eq!(files(&ns, "w"), Some(3));
    ns.complete("/a", "w", 0).expect("complete");
    assert_eq!(files(&ns, "w"), Some(2));
    ns.apply(Op::Delete {
        path: p("/b"),
        recursive: false,
    })
    .expect("delete an open file");
    assert_eq!(files(&ns, "w"), Some(1));
    ns.create("/c", true, "w")
        .expect("overwrite its own open file");
    assert_eq!(
        files(&ns, "w"),
        Some(1),
        "the old /c went, the new one came"
    );
    ns.apply(Op::Append {
        path: p("/c"),
        holder: "w".into(),
    })
    .expect("append to its own open file");
    assert_eq!(files(&ns, "w"), Some(1), "one file is counted once");
    ns.now += 30_000;
    ns.apply(Op::RenewLease { holder: "w".into() })
        .expect("renew");
    let renewed = lease_of(&ns, "w").expect("a lease");
    assert_eq!((renewed.files, renewed.expiry_ms), (1, ns.now + 60_000));
    // w lapses; x takes /c over, so w writes nothing and its record goes.
    ns.now += 61_000;
    ns.apply(Op::Append {
        path: p("/c"),
        holder: "x".into(),
    })
    .expect("take over");
    assert_eq!(files(&ns, "w"), None);
    assert_eq!(files(&ns, "x"), Some(1));
    ns.apply(Op::RecoverLease {
        path: p("/c"),
        last_group_length: None,
    })
    .expect("recover");
    assert_eq!(files(&ns, "x"), None);
    assert!(
        ns.kv
            .scan(kv::Cf::LeaseFiles, &[], None, 10)
            .expect("scan")
            .is_empty(),
        "no file is left claimed"
    );
}

#[test]
fn stat_and_paged_list() {
    let mut ns = Ns::new();
    ns.mkdir("/d", false).expect("mkdir");
    for i in (0..25).rev() {
        ns.file(&format!("/d/f{i:02}"));
    }
    let (page, more) = tree::list(&ns.kv, &p("/d"), None, 10).expect("list");
    assert!(more);
    assert_eq!(page.first().map(|i| i.name.as_str()), Some("f00"));
    assert_eq!(page.last().map(|i| i.name.as_str()), Some("f09"));
    let (page, more) = tree::list(&ns.kv, &p("/d"), Some("f09"), 10).expect("list");
    assert!(more);
    assert_eq!(page.first().map(|i| i.name.as_str()), Some("f10"));
    let (page, more) = tree::list(&ns.kv, &p("/d"), Some("f19"), 10).expect("list");
    assert!(!more);
    assert_eq!(page.len(), 5);
    let (page, more) = tree::list(&ns.kv, &p("/d"), Some("f24"), 10).expect("list");
    assert!(page.is_empty() && !more);
    // a file lists as itself
    let (page, _) = tree::list(&ns.kv, &p("/d/f03"), None, 10).expect("list");
    assert_eq!(page.len(), 1);
    assert!(matches!(
        tree::list(&ns.kv, &p("/nope"), None, 10),
        Err(ApplyError::Ns(NsError::NotFound(_)))
    ));
    assert!(matches!(
        ns.stat("/d/f03/x"),
        Err(NsError::NotADirectory(_))
    ));
    assert!(matches!(ns.stat("/d/nope"), Err(NsError::NotFound(_))));
}

#[test]
fn rename_files_and_directories() {
    let mut ns = Ns::new();
    ns.mkdir("/a/b/c", true).expect("mkdir");
    ns.mkdir("/z", false).expect("mkdir");
    ns.file("/a/b/c/f");
    ns.file("/g");
    let rename = |ns: &mut Ns, s: &str, d: &str, o: bool| {
        ns.apply(Op::Rename {
            src: p(s),
            dst: p(d),
            overwrite: o,
        })
    };
    assert_eq!(
        Ns::kind(rename(&mut ns, "/a", "/a/b/x", false)),
        "RenameIntoSubtree"
    );
    assert_eq!(
        Ns::kind(rename(&mut ns, "/a", "/a/b", true)),
        "RenameIntoSubtree"
    );
    assert_eq!(
        Ns::kind(rename(&mut ns, "/", "/q", false)),
        "RootNotAllowed"
    );
    assert_eq!(
        Ns::kind(rename(&mut ns, "/a", "/", false)),
        "RootNotAllowed"
    );
    assert_eq!(Ns::kind(rename(&mut ns, "/nope", "/q", false)), "NotFound");
    assert_eq!(
        Ns::kind(rename(&mut ns, "/a", "/nope/q", false)),
        "ParentNotFound"
    );
    assert_eq!(
        Ns::kind(rename(&mut ns, "/a", "/g/q", false)),
        "NotADirectory"
    );
    assert_eq!(
        Ns::kind(rename(&mut ns, "/a", "/z", false)),
        "AlreadyExists"
    );
    assert_eq!(Ns::kind(rename(&mut ns, "/a", "/g", true)), "NotADirectory");
    assert_eq!(Ns::kind(rename(&mut ns, "/g", "/z", true)), "IsADirectory");
    assert!(rename(&mut ns, "/a", "/a", false).is_ok());
    // a directory moves with its subtree, atomically
    let before = ns.stat("/a/b/c/f").expect("stat").id;
    rename(&mut ns, "/a/b", "/z/b2", false).expect("rename dir");
    assert_eq!(ns.stat("/z/b2/c/f").expect("stat").id, before);
    assert!(matches!(ns.stat("/a/b"), Err(NsError::NotFound(_))));
    assert_eq!(ns.stat("/a").expect("stat").children, 0);
    assert_eq!(ns.stat("/z").expect("stat").children, 1);
    // onto an empty directory with overwrite; not onto a non-empty one
    ns.mkdir("/empty", false).expect("mkdir");
    assert_eq!(
        Ns::kind(rename(&mut ns, "/a", "/z", true)),
        "DirectoryNotEmpty"
    );
    rename(&mut ns, "/a", "/empty", true).expect("overwrite empty dir");
    // file over file
    ns.file("/h");
    rename(&mut ns, "/g", "/h", true).expect("overwrite file");
    assert!(matches!(ns.stat("/g"), Err(NsError::NotFound(_))));
    assert_eq!(ns.names("/"), ["empty", "h", "z"]);
    // rename within one directory keeps its count right
    rename(&mut ns, "/h", "/h2", false).expect("rename in place");
    assert_eq!(ns.stat("/").expect("stat").children, 3);
}

#[test]
fn delete_recursive_and_not() {
    let mut ns = Ns::new();
    ns.mkdir("/a/b/c", true).expect("mkdir");
    ns.file("/a/b/c/f");
    ns.file("/a/g");
    ns.apply(Op::SetXattr {
        path: p("/a/g"),
        name: "user.k".into(),
        value: b"v".to_vec(),
        expect: XattrExpect::Any,
    })
    .expect("xattr");
    let del = |ns: &mut Ns, s: &str, r: bool| {
        ns.apply(Op::Delete {
            path: p(s),
            recursive: r,
        })
    };
    assert_eq!(Ns::kind(del(&mut ns, "/a", false)), "DirectoryNotEmpty");
    assert_eq!(Ns::kind(del(&mut ns, "/", true)), "RootNotAllowed");
    assert_eq!(Ns::kind(del(&mut ns, "/nope", true)), "NotFound");
    assert_eq!(
        del(&mut ns, "/a", true).expect("rm -r"),
        OpOutput::Removed(1)
    );
    assert!(ns.names("/").is_empty());
    assert_eq!(ns.stat("/").expect("stat").children, 0);
    // the subtree's records go in later entries, two records per step here
    assert_eq!(ns.reclaim_all(2).0, 5);
    // nothing is left behind: only the root's record and the id counter remain
    let inodes = ns.kv.scan(kv::Cf::Inodes, &[], None, 100).expect("scan");
    assert_eq!(inodes.len(), 1);
    assert!(
        ns.kv
            .scan(kv::Cf::Dentries, &[], None, 100)
            .expect("scan")
            .is_empty()
    );
    assert!(
        ns.kv
            .scan(kv::Cf::Xattrs, &[], None, 100)
            .expect("scan")
            .is_empty()
    );
    assert!(
        ns.kv
            .scan(kv::Cf::LeaseFiles, &[], None, 100)
            .expect("scan")
            .is_empty()
    );
    ns.mkdir("/e", false).expect("mkdir");
    assert_eq!(
        del(&mut ns, "/e", false).expect("rmdir"),
        OpOutput::Removed(1)
    );
}

#[test]
fn attributes_policies_and_summary() {
    let mut ns = Ns::new();
    ns.mkdir("/d", false).expect("mkdir");
    ns.file("/d/f");
    assert!(
        ns.apply(Op::SetPermission {
            path: p("/d/f"),
            permission: 0o600
        })
        .is_ok()
    );
    assert_eq!(ns.stat("/d/f").expect("stat").permission, 0o600);
    assert_eq!(
        Ns::kind(ns.apply(Op::SetPermission {
            path: p("/d/f"),
            permission: 0o10000
        })),
        "InvalidArgument"
    );
    assert_eq!(
        Ns::kind(ns.apply(Op::SetPermission {
            path: p("/x"),
            permission: 0o600
        })),
        "NotFound"
    );
    ns.apply(Op::SetOwner {
        path: p("/d"),
        owner: Some("bob".into()),
        group: None,
    })
    .expect("chown");
    assert_eq!(ns.stat("/d").expect("stat").owner, "bob");
    assert_eq!(
        Ns::kind(ns.apply(Op::SetOwner {
            path: p("/d"),
            owner: None,
            group: None
        })),
        "InvalidArgument"
    );
    ns.apply(Op::SetTimes {
        path: p("/d/f"),
        mtime_ms: Some(7),
        atime_ms: None,
    })
    .expect("touch");
    assert_eq!(ns.stat("/d/f").expect("stat").mtime_ms, 7);
    let ec: StoragePolicy = "RS-6-3-1024k".parse().expect("policy");
    assert_eq!(
        Ns::kind(ns.apply(Op::SetStoragePolicy {
            path: p("/d/f"),
            policy: ec.clone()
        })),
        "InvalidArgument"
    );
    ns.apply(Op::SetStoragePolicy {
        path: p("/d"),
        policy: ec.clone(),
    })
    .expect("set policy");
    ns.mkdir("/d/sub", false).expect("mkdir");
    ns.file("/d/sub/new");
    assert_eq!(
        ns.stat("/d/sub/new").expect("stat").policy,
        ec,
        "policy passes down"
    );
    assert_eq!(
        ns.stat("/d/f").expect("stat").policy,
        StoragePolicy::Replicated(3),
        "existing files keep theirs"
    );
    ns.apply(Op::SetStoragePolicy {
        path: p("/d/f"),
        policy: StoragePolicy::Replicated(2),
    })
    .expect("setrep");
    ns.apply(Op::Symlink {
        path: p("/d/l"),
        target: "/d/f".into(),
        create_parents: false,
        owner: "a".into(),
    })
    .expect("symlink");
    let s = tree::content_summary(&ns.kv, &p("/"), None).expect("summary");
    assert_eq!(
        s,
        ContentSummary {
            directories: 3,
            files: 2,
            symlinks: 1,
            length: 0,
            space_consumed: 0,
        }
    );
}

#[test]
fn xattrs_compare_and_set() {
    let mut ns = Ns::new();
    ns.file("/f");
    let set = |ns: &mut Ns, v: &[u8], e: XattrExpect| {
        ns.apply(Op::SetXattr {
            path: p("/f"),
            name: "user.reg".into(),
            value: v.to_vec(),
            expect: e,
        })
    };
    assert!(set(&mut ns, b"1", XattrExpect::Absent).is_ok());
    assert_eq!(
        Ns::kind(set(&mut ns, b"2", XattrExpect::Absent)),
        "XattrMismatch"
    );
    assert_eq!(
        Ns::kind(set(&mut ns, b"2", XattrExpect::Value(b"0".to_vec()))),
        "XattrMismatch"
    );
    assert!(set(&mut ns, b"2", XattrExpect::Value(b"1".to_vec())).is_ok());
    assert!(set(&mut ns, b"3", XattrExpect::Any).is_ok());
    let all = tree::get_xattrs(&ns.kv, &p("/f"), &[]).expect("get");
    assert_eq!(all, vec![("user.reg".to_owned(), b"3".to_vec())]);
    assert!(tree::get_xattrs(&ns.kv, &p("/f"), &["user.none".into()]).is_err());
    assert_eq!(
        Ns::kind(ns.apply(Op::SetXattr {
            path: p("/f"),
            name: "noprefix".into(),
            value: vec![],
            expect: XattrExpect::Any
        })),
        "InvalidArgument"
    );
    ns.apply(Op::RemoveXattr {
        path: p("/f"),
        name: "user.reg".into(),
    })
    .expect("remove");
    assert_eq!(
        Ns::kind(ns.apply(Op::RemoveXattr {
            path: p("/f"),
            name: "user.reg".into()
        })),
        "XattrNotFound"
    );
}

#[test]
fn deep_paths_and_big_directories() {
    let mut ns = Ns::new();
    let deep: String = (0..1000).map(|i| format!("/d{i}")).collect();
    ns.mkdir(&deep, true).expect("mkdir 1000 deep");
    assert!(ns.stat(&deep).is_ok());
    ns.mkdir("/big", false).expect("mkdir");
    for i in 0..3000 {
        ns.mkdir(&format!("/big/{i:05}"), false).expect("mkdir");
    }
    // a recursive delete spanning several scan pages
    assert_eq!(
        ns.apply(Op::Delete {
            path: p("/big"),
            recursive: true
        })
        .expect("rm -r"),
        OpOutput::Removed(1)
    );
    assert_eq!(
        ns.apply(Op::Delete {
            path: p("/d0"),
            recursive: true
        })
        .expect("rm -r"),
        OpOutput::Removed(1)
    );
    // 3,001 directories and a chain of 1,000 (999 of them detached in turn): one step
    let (removed, steps, _) = ns.reclaim_all(10_000);
    assert_eq!((removed, steps), (4001, 1));
}

#[test]
fn xattr_appends_grow_one_list_and_refuse_to_outgrow_the_limit() {
    let mut ns = Ns::new();
    ns.file("/f");
    let append = |ns: &mut Ns, v: &[u8]| {
        ns.apply(Op::AppendXattr {
            path: p("/f"),
            name: "user.list".into(),
            value: v.to_vec(),
        })
    };
    assert!(append(&mut ns, b"1,").is_ok(), "created when absent");
    assert!(append(&mut ns, b"2,").is_ok());
    let got = tree::get_xattrs(&ns.kv, &p("/f"), &["user.list".into()]).expect("get");
    assert_eq!(got, vec![("user.list".to_owned(), b"1,2,".to_vec())]);
    let big = vec![b'x'; tree::MAX_XATTR_VALUE - 3];
    assert_eq!(Ns::kind(append(&mut ns, &big)), "InvalidArgument");
    let got = tree::get_xattrs(&ns.kv, &p("/f"), &["user.list".into()]).expect("get");
    assert_eq!(
        got[0].1,
        b"1,2,".to_vec(),
        "a refused append changes nothing"
    );
    assert_eq!(
        Ns::kind(ns.apply(Op::AppendXattr {
            path: p("/missing"),
            name: "user.list".into(),
            value: b"1,".to_vec(),
        })),
        "NotFound"
    );
}

#[test]
fn block_groups_are_allocated_closed_and_dropped_with_their_file() {
    let mut ns = Ns::new();
    ns.mkdir("/ec", false).expect("mkdir");
    ns.apply(Op::SetStoragePolicy {
        path: p("/ec"),
        policy: "RS-3-2-1024k".parse().expect("policy"),
    })
    .expect("set policy");
    ns.create("/ec/f", false, "w").expect("create");
    assert_eq!(
        ns.stat("/ec/f").expect("stat").policy.to_string(),
        "RS-3-2-1024k",
        "inherited from the directory"
    );
    // An RS-3-2 group needs 5 distinct servers.
    for bad in [&[1, 2, 3, 4][..], &[1, 2, 3, 4, 4], &[]] {
        assert_eq!(
            Ns::kind(ns.add_block("/ec/f", "w", 0, bad)),
            "InvalidArgument",
            "{bad:?}"
        );
    }
    assert_eq!(
        Ns::kind(ns.add_block("/ec/f", "x", 0, &[1, 2, 3, 4, 5])),
        "LeaseConflict"
    );
    assert_eq!(
        Ns::kind(ns.add_block("/ec/f", "w", 7, &[1, 2, 3, 4, 5])),
        "InvalidArgument",
        "the file holds 0 bytes, not 7"
    );
    let OpOutput::Group(f, g0) = ns
        .add_block("/ec/f", "w", 0, &[1, 2, 3, 4, 5])
        .expect("add")
    else {
        panic!()
    };
    assert_eq!(
        (f.block_groups, g0.index, g0.offset, g0.length),
        (1, 0, 0, None)
    );
    // A group holds 3 x 1 MiB: the second group cannot start past that.
    let cap = 3 * BLOCK;
    assert_eq!(
        Ns::kind(ns.add_block("/ec/f", "w", cap + 1, &[5, 4, 3, 2, 1])),
        "InvalidArgument"
    );
    let OpOutput::Group(_, g1) = ns
        .add_block("/ec/f", "w", cap, &[5, 4, 3, 2, 1])
        .expect("add")
    else {
        panic!()
    };
    assert_ne!(g0.id, g1.id);
    assert_eq!((g1.index, g1.offset), (1, cap));
    // A third group allocated and never written is dropped when the file completes.
    ns.add_block("/ec/f", "w", cap + 10, &[1, 2, 3, 4, 5])
        .expect("add");
    let OpOutput::Inode(f) = ns.complete("/ec/f", "w", cap + 10).expect("complete") else {
        panic!()
    };
    assert_eq!((f.length, f.block_groups), (cap + 10, 2));
    let groups = ns.groups("/ec/f");
    assert_eq!(
        groups.iter().map(|g| g.length).collect::<Vec<_>>(),
        vec![Some(cap), Some(10)]
    );
    assert_eq!(groups[0].targets, servers(&[1, 2, 3, 4, 5]));
    // Deleting the file removes the group records; the ids stay allocated (so that blocks
    // reported later are recognized as garbage).
    ns.apply(Op::Delete {
        path: p("/ec/f"),
        recursive: false,
    })
    .expect("delete");
    assert!(blocks::load(&ns.kv, g0.id).expect("load").is_none());
    assert!(blocks::allocated(&ns.kv, g1.id).expect("allocated"));
    assert!(!blocks::allocated(&ns.kv, GroupId(g1.id.0 + 10)).expect("allocated"));
}

#[test]
fn block_sizes_must_fit_the_policy_and_recovery_closes_the_open_group() {
    let mut ns = Ns::new();
    ns.mkdir("/ec", false).expect("mkdir");
    ns.apply(Op::SetStoragePolicy {
        path: p("/ec"),
        policy: "RS-6-3-1024k".parse().expect("policy"),
    })
    .expect("set policy");
    let create = |path: &str, block_size: u64| Op::Create {
        path: p(path),
        overwrite: false,
        create_parents: false,
        permission: 0o644,
        owner: "alice".into(),
        group: None,
        policy: None,
        holder: "w".into(),
        block_size,
    };
    for bad in [0, 64 * 1024, BLOCK + 64 * 1024, 4 << 30] {
        assert_eq!(
            Ns::kind(ns.apply(create("/ec/f", bad))),
            "InvalidArgument",
            "{bad}"
        );
    }
    ns.apply(create("/r", 64 * 1024))
        .expect("a replicated file takes any multiple of 64 KiB");
    ns.apply(create("/ec/f", BLOCK)).expect("create");
    let OpOutput::Group(_, g) = ns
        .add_block("/ec/f", "w", 0, &[1, 2, 3, 4, 5, 6, 7, 8, 9])
        .expect("add")
    else {
        panic!()
    };
    assert_eq!(
        Ns::kind(ns.apply(Op::RecoverLease {
            path: p("/ec/f"),
            last_group_length: Some((5 << 20, GroupId(g.id.0 + 1))),
        })),
        "InvalidArgument",
        "the open group is not the one measured"
    );
    let OpOutput::Inode(f) = ns
        .apply(Op::RecoverLease {
            path: p("/ec/f"),
            last_group_length: Some((5 << 20, g.id)),
        })
        .expect("recover")
    else {
        panic!()
    };
    assert_eq!(f.length, 5 << 20);
    assert!(f.under_construction.is_none());
    assert_eq!(ns.groups("/ec/f")[0].length, Some(5 << 20));
    // The recovered group moved to its next generation: the blocks the leader restamped
    // count, a copy still at the first (a stale writer's) is garbage.
    let generation = blocks::generation(&ns.kv, g.id).expect("generation");
    assert_eq!(generation, blocks::Generation(2));
    assert!(!blocks::garbage(&ns.kv, g.id, 4, generation).expect("read"));
    assert!(blocks::garbage(&ns.kv, g.id, 4, blocks::Generation::FIRST).expect("read"));
    // The holder writes /r still: its lease stays.
    assert!(ns.kv.get(kv::Cf::Leases, b"w").expect("get").is_some());
    ns.apply(Op::RecoverLease {
        path: p("/r"),
        last_group_length: None,
    })
    .expect("recover");
    assert!(
        ns.kv.get(kv::Cf::Leases, b"w").expect("get").is_none(),
        "nothing left to write: the lease record goes"
    );
}

#[test]
fn a_million_file_delete_is_gone_at_once_and_reclaimed_in_bounded_steps() {
    const DIRS: usize = 100;
    const FILES: usize = 10_000;
    const BUDGET: u64 = 10_000;
    let mut ns = Ns::new();
    ns.mkdir("/big", false).expect("mkdir");
    ns.mkdir("/keep", false).expect("mkdir");
    // Built as the journal would apply it: 512 operations per entry.
    let ops = (0..DIRS).flat_map(|d| {
        let dir = format!("/big/d{d:03}");
        std::iter::once(Op::Mkdir {
            path: p(&dir),
            parents: false,
            permission: 0o755,
            owner: "alice".into(),
            group: None,
        })
        .chain((0..FILES).map(move |f| Op::Create {
            path: p(&format!("{dir}/f{f:05}")),
            overwrite: false,
            create_parents: false,
            permission: 0o644,
            owner: "alice".into(),
            group: None,
            policy: None,
            holder: "writer".into(),
            block_size: BLOCK,
        }))
    });
    let ctx = ns.ctx();
    let mut ops = ops.peekable();
    while ops.peek().is_some() {
        let mut txn = Txn::new(&ns.kv);
        for op in ops.by_ref().take(512) {
            tree::apply(&mut txn, &ctx, &op).expect("build");
        }
        let writes = txn.into_writes();
        ns.kv.commit(writes);
    }
    // One open file with a block group, and one in the tree that stays.
    ns.add_block("/big/d000/f00000", "writer", 0, &[1, 2, 3])
        .expect("add block");
    ns.create("/keep/f", false, "writer").expect("create");
    let inside = ns.stat("/big/d007/f00042").expect("stat").id;

    // The delete's own entry: a handful of writes, whatever the subtree's size.
    let ctx = ns.ctx();
    let mut txn = Txn::new(&ns.kv);
    let out = tree::apply(
        &mut txn,
        &ctx,
        &Op::Delete {
            path: p("/big"),
            recursive: true,
        },
    )
    .expect("rm -r");
    assert_eq!(out, OpOutput::Removed(1));
    let writes = txn.into_writes();
    assert!(writes.len() <= 4, "{} writes", writes.len());
    ns.kv.commit(writes);
    // Gone for clients at once; the name is free again; nothing in it has a path.
    assert_eq!(ns.names("/"), vec!["keep"]);
    assert_eq!(
        Ns::kind(ns.stat("/big/d007").map(OpOutput::Inode)),
        "NotFound"
    );
    assert_eq!(tree::path_of(&ns.kv, inside).expect("path"), None);
    ns.mkdir("/big", false).expect("mkdir again");
    ns.create("/big/new", false, "writer")
        .expect("create again");

    let (removed, steps, most) = ns.reclaim_all(BUDGET);
    assert_eq!(removed, (DIRS * (FILES + 1) + 1) as u64);
    assert!(steps >= removed / (BUDGET + 1), "{steps} steps");
    // A step's writes are bounded by its budget: a file is its inode and its dentry (and
    // its lease entry, and its groups, counted in the budget), a directory its detachment.
    assert!(
        most <= 4 * BUDGET as usize,
        "one step wrote {most} records, budget {BUDGET}"
    );
    // Everything of the old tree is gone, the new one and /keep are intact.
    assert!(!reclaim::pending(&ns.kv).expect("pending"));
    assert_eq!(ns.names("/big"), vec!["new"]);
    assert_eq!(ns.names("/keep"), vec!["f"]);
    let inodes = ns.kv.scan(kv::Cf::Inodes, &[], None, 100).expect("scan");
    assert_eq!(inodes.len(), 5, "root, /big, /big/new, /keep, /keep/f");
    assert!(
        ns.kv
            .scan(kv::Cf::BlockGroups, &[], None, 10)
            .expect("scan")
            .is_empty()
    );
    let lease_files = ns.kv.scan(kv::Cf::LeaseFiles, &[], None, 10).expect("scan");
    assert_eq!(
        lease_files.len(),
        2,
        "the two files created after the delete"
    );
}

#[test]
fn reclaim_resumes_where_the_last_step_stopped_and_tolerates_any_budget() {
    let mut ns = Ns::new();
    ns.mkdir("/t/a/b/c", true).expect("mkdir");
    for i in 0..10 {
        ns.create(&format!("/t/a/f{i}"), false, "w")
            .expect("create");
        ns.create(&format!("/t/a/b/c/g{i}"), false, "w")
            .expect("create");
    }
    ns.apply(Op::Delete {
        path: p("/t"),
        recursive: true,
    })
    .expect("rm -r");
    // A budget of 0 still makes progress (one record a step, and a directory whose last
    // child that was goes with it).
    let (removed, steps, _) = ns.reclaim_all(0);
    assert_eq!(removed, 24);
    assert!(steps >= removed / 2, "{steps}");
    // Nothing detached: a reclaim step is a no-op.
    assert_eq!(
        ns.apply(Op::Reclaim { budget: 5 }).expect("reclaim"),
        OpOutput::Removed(0)
    );
    assert_eq!(
        ns.kv
            .scan(kv::Cf::Inodes, &[], None, 10)
            .expect("scan")
            .len(),
        1,
        "the root's record"
    );
}

#[test]
fn oversized_operations_are_refused_before_the_journal() {
    let xattr = |len: usize| Op::SetXattr {
        path: p("/f"),
        name: "user.big".into(),
        value: vec![b'x'; len],
        expect: XattrExpect::Any,
    };
    assert_eq!(xattr(tree::MAX_XATTR_VALUE).check_bounds(), Ok(()));
    assert_eq!(
        xattr(tree::MAX_XATTR_VALUE + 1)
            .check_bounds()
            .map_err(|e| e.kind()),
        Err("InvalidArgument")
    );
    assert_eq!(
        xattr(4 << 20).check_bounds().map_err(|e| e.kind()),
        Err("InvalidArgument")
    );
    let append = Op::AppendXattr {
        path: p("/f"),
        name: "user.log".into(),
        value: vec![0; tree::MAX_XATTR_VALUE + 1],
    };
    assert!(append.check_bounds().is_err());
    // The deepest path of the longest names is journaled; a symlink target of 1 MiB is not.
    let longest: String = (0..path::MAX_DEPTH)
        .map(|_| format!("/{}", "n".repeat(path::MAX_COMPONENT_BYTES)))
        .collect();
    let mkdir = Op::Mkdir {
        path: p(&longest),
        parents: true,
        permission: 0o755,
        owner: "alice".into(),
        group: None,
    };
    assert_eq!(mkdir.check_bounds(), Ok(()));
    let symlink = Op::Symlink {
        path: p("/l"),
        target: "t".repeat(1 << 20),
        create_parents: false,
        owner: "alice".into(),
    };
    assert!(symlink.size_bound() > ops::MAX_OP_BYTES);
    assert!(symlink.check_bounds().is_err());
}

/// A reader asks for a file's groups a page at a time, by offset: every range and page size
/// gives exactly the closed groups of that range, in order, found by binary search; the open
/// group of a file being written is never among them and ends what can be read.
#[test]
fn groups_are_found_by_offset_a_page_at_a_time() {
    let mut ns = Ns::new();
    ns.create("/f", false, "w").expect("create");
    let groups = 40u64;
    for i in 0..groups {
        ns.add_block("/f", "w", i * BLOCK, &[1, 2, 3]).expect("add");
    }
    let open = ns.stat("/f").expect("stat");
    let readable = blocks::readable_length(&ns.kv, &open).expect("readable");
    assert_eq!(
        readable,
        (groups - 1) * BLOCK,
        "the open group is not readable yet"
    );
    let (all, more) = blocks::in_range(&ns.kv, &open, 0, u64::MAX, usize::MAX).expect("range");
    assert_eq!((all.len() as u64, more), (groups - 1, false));

    ns.complete("/f", "w", groups * BLOCK - 7)
        .expect("complete");
    let file = ns.stat("/f").expect("stat");
    let every = ns.groups("/f");
    assert_eq!(
        blocks::readable_length(&ns.kv, &file).expect("readable"),
        file.length
    );
    for (offset, len) in [
        (0, 1),
        (0, BLOCK),
        (BLOCK - 1, 2),
        (5 * BLOCK, 0),
        (7 * BLOCK + 3, 9 * BLOCK),
        (file.length - 1, 0),
        (file.length, 0),
        (u64::MAX - 1, 0),
    ] {
        let end = if len == 0 { u64::MAX } else { offset + len };
        let want: Vec<_> = every
            .iter()
            .filter(|g| {
                g.length
                    .is_some_and(|l| g.offset < end && g.offset + l > offset)
            })
            .map(|g| g.id)
            .collect();
        for limit in [1, 2, 3, 7, 1000] {
            let mut got = Vec::new();
            let mut at = offset;
            loop {
                let (page, more) = blocks::in_range(&ns.kv, &file, at, end, limit).expect("range");
                assert!(page.len() <= limit);
                got.extend(page.iter().map(|g| g.id));
                if !more {
                    break;
                }
                let last = page.last().expect("a page before more");
                at = last.offset + last.length.expect("closed");
            }
            assert_eq!(got, want, "offset {offset} len {len} limit {limit}");
        }
    }
}

// ---------------------------------------------------------------- permissions

fn user(name: &str, groups: &[&str]) -> permission::Access {
    permission::Access {
        user: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        superuser: false,
        machine: String::new(),
    }
}

impl Ns {
    /// A directory as the active's own work, owned by `owner:group` with `mode`.
    fn dir_of(&mut self, path: &str, owner: &str, group: &str, mode: u16) {
        self.apply(Op::Mkdir {
            path: p(path),
            parents: false,
            permission: mode,
            owner: owner.into(),
            group: Some(group.into()),
        })
        .expect("mkdir");
    }

    fn mkdir_as(&mut self, a: &permission::Access, path: &str) -> Result<OpOutput, NsError> {
        self.apply_as(
            Some(a),
            Op::Mkdir {
                path: p(path),
                parents: false,
                permission: 0o755,
                owner: a.user.clone(),
                group: None,
            },
        )
    }

    fn file_as(
        &mut self,
        a: &permission::Access,
        path: &str,
        mode: u16,
    ) -> Result<OpOutput, NsError> {
        self.apply_as(
            Some(a),
            Op::Create {
                path: p(path),
                overwrite: false,
                create_parents: false,
                permission: mode,
                owner: a.user.clone(),
                group: None,
                policy: None,
                holder: format!("{}-writer", a.user),
                block_size: BLOCK,
            },
        )
    }

    fn read_as(
        &self,
        a: &permission::Access,
        path: &str,
        kind: permission::ReadAccess,
    ) -> Result<(), NsError> {
        match permission::check_read(&self.kv, a, &p(path), kind) {
            Ok(()) => Ok(()),
            Err(ApplyError::Ns(e)) => Err(e),
            Err(ApplyError::Store(e)) => panic!("store error: {e}"),
        }
    }
}

fn denied<T: std::fmt::Debug>(r: Result<T, NsError>) {
    assert!(
        matches!(r, Err(NsError::PermissionDenied { .. })),
        "expected PermissionDenied, got {r:?}"
    );
}

#[test]
fn private_directories_are_searched_listed_and_written_by_their_owner_only() {
    use permission::ReadAccess::{List, Read, Stat};
    let mut ns = Ns::new();
    let (alice, bob) = (user("alice", &["staff"]), user("bob", &["staff"]));
    ns.dir_of("/home", "root", "supergroup", 0o755);
    ns.dir_of("/home/alice", "alice", "staff", 0o700);
    ns.file_as(&alice, "/home/alice/notes", 0o600)
        .expect("alice writes her own");
    ns.read_as(&alice, "/home/alice/notes", Read)
        .expect("alice reads her own");
    denied(ns.read_as(&bob, "/home/alice/notes", Stat));
    denied(ns.read_as(&bob, "/home/alice", List));
    ns.read_as(&bob, "/home/alice", Stat)
        .expect("stat needs search on the parent only");
    denied(ns.file_as(&bob, "/home/alice/planted", 0o644));
    denied(ns.mkdir_as(&bob, "/home/bob"));
    let before = ns.names("/home/alice");
    denied(ns.apply_as(
        Some(&bob),
        Op::Delete {
            path: p("/home/alice/notes"),
            recursive: false,
        },
    ));
    denied(ns.apply_as(
        Some(&bob),
        Op::Delete {
            path: p("/home/alice"),
            recursive: true,
        },
    ));
    denied(ns.apply_as(
        Some(&bob),
        Op::Rename {
            src: p("/home/alice/notes"),
            dst: p("/home/stolen"),
            overwrite: false,
        },
    ));
    denied(ns.apply_as(
        Some(&bob),
        Op::SetPermission {
            path: p("/home/alice"),
            permission: 0o777,
        },
    ));
    assert_eq!(ns.names("/home/alice"), before);
    assert_eq!(ns.stat("/home/alice").expect("stat").permission, 0o700);
    // Readable to the group: bob reads, but still cannot write.
    ns.apply_as(
        Some(&alice),
        Op::SetPermission {
            path: p("/home/alice"),
            permission: 0o750,
        },
    )
    .expect("the owner changes the mode");
    ns.apply_as(
        Some(&alice),
        Op::SetPermission {
            path: p("/home/alice/notes"),
            permission: 0o640,
        },
    )
    .expect("the owner changes the mode");
    ns.read_as(&bob, "/home/alice", List).expect("group read");
    ns.read_as(&bob, "/home/alice/notes", Read)
        .expect("group read");
    denied(ns.file_as(&bob, "/home/alice/planted", 0o644));
    let eve = user("eve", &[]);
    denied(ns.read_as(&eve, "/home/alice/notes", Read));
    // The superuser passes every check.
    let root = permission::Access {
        superuser: true,
        ..user("ops", &[])
    };
    ns.apply_as(
        Some(&root),
        Op::Delete {
            path: p("/home/alice"),
            recursive: true,
        },
    )
    .expect("the superuser deletes");
}

#[test]
fn the_sticky_bit_keeps_entries_to_their_owners() {
    let mut ns = Ns::new();
    let (alice, bob, carol) = (user("alice", &[]), user("bob", &[]), user("carol", &[]));
    ns.dir_of("/tmp", "carol", "supergroup", 0o1777);
    ns.file_as(&alice, "/tmp/a", 0o666)
        .expect("anyone creates in /tmp");
    ns.file_as(&bob, "/tmp/b", 0o666)
        .expect("anyone creates in /tmp");
    denied(ns.apply_as(
        Some(&bob),
        Op::Delete {
            path: p("/tmp/a"),
            recursive: false,
        },
    ));
    denied(ns.apply_as(
        Some(&bob),
        Op::Rename {
            src: p("/tmp/a"),
            dst: p("/tmp/mine"),
            overwrite: false,
        },
    ));
    denied(ns.apply_as(
        Some(&bob),
        Op::Rename {
            src: p("/tmp/b"),
            dst: p("/tmp/a"),
            overwrite: true,
        },
    ));
    assert_eq!(ns.names("/tmp"), ["a", "b"]);
    ns.apply_as(
        Some(&alice),
        Op::Delete {
            path: p("/tmp/a"),
            recursive: false,
        },
    )
    .expect("the entry's owner");
    ns.apply_as(
        Some(&carol),
        Op::Delete {
            path: p("/tmp/b"),
            recursive: false,
        },
    )
    .expect("the directory's owner");
    // Without the sticky bit, write on the directory is enough.
    ns.dir_of("/pub", "carol", "supergroup", 0o777);
    ns.file_as(&alice, "/pub/a", 0o644).expect("create");
    ns.apply_as(
        Some(&bob),
        Op::Delete {
            path: p("/pub/a"),
            recursive: false,
        },
    )
    .expect("no sticky bit");
}

#[test]
fn groups_modes_and_owners() {
    let mut ns = Ns::new();
    let (carol, dave) = (user("carol", &["team"]), user("dave", &["other"]));
    ns.dir_of("/team", "lead", "team", 0o770);
    ns.file_as(&carol, "/team/plan", 0o640)
        .expect("group members write");
    denied(ns.file_as(&dave, "/team/x", 0o644));
    assert_eq!(
        ns.stat("/team/plan").expect("stat").group,
        "team",
        "the parent's group"
    );
    // chown is the superuser's; chgrp the owner's, to a group it is in.
    denied(ns.apply_as(
        Some(&carol),
        Op::SetOwner {
            path: p("/team/plan"),
            owner: Some("dave".into()),
            group: None,
        },
    ));
    denied(ns.apply_as(
        Some(&carol),
        Op::SetOwner {
            path: p("/team/plan"),
            owner: None,
            group: Some("other".into()),
        },
    ));
    denied(ns.apply_as(
        Some(&dave),
        Op::SetOwner {
            path: p("/team/plan"),
            owner: None,
            group: Some("other".into()),
        },
    ));
    let carol2 = user("carol", &["team", "audit"]);
    ns.apply_as(
        Some(&carol2),
        Op::SetOwner {
            path: p("/team/plan"),
            owner: None,
            group: Some("audit".into()),
        },
    )
    .expect("the owner gives the file to a group of hers");
    let root = permission::Access {
        superuser: true,
        ..user("hdfs", &[])
    };
    ns.apply_as(
        Some(&root),
        Op::SetOwner {
            path: p("/team/plan"),
            owner: Some("dave".into()),
            group: None,
        },
    )
    .expect("the superuser chowns");
    assert_eq!(ns.stat("/team/plan").expect("stat").owner, "dave");
}

#[test]
fn groups_attributes_and_summaries_follow_the_callers_rights() {
    let mut ns = Ns::new();
    let alice = user("alice", &["staff"]);
    ns.dir_of("/pub", "root", "supergroup", 0o777);
    // A new inode's group: one of the caller's, or the parent's.
    let in_group = |group: &str| Op::Mkdir {
        path: p(&format!("/pub/{group}")),
        parents: false,
        permission: 0o755,
        owner: "alice".into(),
        group: Some(group.into()),
    };
    denied(ns.apply_as(Some(&alice), in_group("admins")));
    ns.apply_as(Some(&alice), in_group("staff"))
        .expect("her own group");
    // Extended attributes: users have the user namespace only.
    ns.file_as(&alice, "/pub/f", 0o644).expect("create");
    for name in ["trusted.x", "system.x", "security.x", "raw.x"] {
        denied(ns.apply_as(
            Some(&alice),
            Op::SetXattr {
                path: p("/pub/f"),
                name: name.into(),
                value: b"v".to_vec(),
                expect: XattrExpect::Any,
            },
        ));
    }
    ns.apply_as(
        Some(&alice),
        Op::SetXattr {
            path: p("/pub/f"),
            name: "user.x".into(),
            value: b"v".to_vec(),
            expect: XattrExpect::Any,
        },
    )
    .expect("user namespace");
    // chown to oneself is allowed, as HDFS allows it.
    ns.apply_as(
        Some(&alice),
        Op::SetOwner {
            path: p("/pub/f"),
            owner: Some("alice".into()),
            group: Some("staff".into()),
        },
    )
    .expect("chown alice:staff by alice");
    // A summary needs every directory below readable.
    ns.dir_of("/pub/private", "bob", "bob", 0o700);
    let summary = |a: &permission::Access| tree::content_summary(&ns.kv, &p("/pub"), Some(a));
    assert!(matches!(
        summary(&alice),
        Err(ApplyError::Ns(NsError::PermissionDenied { .. }))
    ));
    let bob = user("bob", &[]);
    assert_eq!(summary(&bob).expect("bob reads all of it").directories, 3);
}

/// Block keys roll through the journal: a key's id must grow (two rolls proposed at once,
/// the second changes nothing), and keys expired at the entry's time are forgotten.
#[test]
fn block_keys_roll_in_order_and_expire() {
    use crate::block_token::BlockKey;
    let key = |id, created_ms, expires_ms| BlockKey {
        id,
        secret: [id as u8; 32],
        created_ms,
        expires_ms,
    };
    let mut ns = Ns::new();
    assert!(super::block_keys::load(&ns.kv).expect("load").is_empty());
    ns.apply(Op::RollBlockKey {
        key: key(1, 1_000, 5_000),
    })
    .expect("first key");
    let same = ns.apply(Op::RollBlockKey {
        key: key(1, 1_000, 9_000),
    });
    assert!(matches!(same, Err(NsError::InvalidArgument(_))), "{same:?}");
    ns.now = 6_000;
    ns.apply(Op::RollBlockKey {
        key: key(2, 6_000, 20_000),
    })
    .expect("second key");
    let ring = super::block_keys::load(&ns.kv).expect("load");
    assert_eq!(ring.keys().map(|k| k.id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(ring.get(2).map(|k| k.expires_ms), Some(20_000));
}

/// What the garbage sweep deletes: blocks of deleted groups, of groups never allocated (a
/// block planted ahead of the allocation counter) and past a group's internal blocks.
#[test]
fn blocks_of_deleted_unallocated_or_missing_positions_are_garbage() {
    let mut ns = Ns::new();
    ns.create("/f", false, "w").expect("create");
    ns.add_block("/f", "w", 0, &[1, 2, 3]).expect("add block");
    let g = ns.groups("/f")[0].id;
    let garbage = |ns: &Ns, id: GroupId, index: u32| {
        blocks::garbage(&ns.kv, id, index, blocks::Generation::FIRST).expect("read")
    };
    assert!(!garbage(&ns, g, 0));
    assert!(
        !garbage(&ns, g, 2),
        "replica positions are within the targets"
    );
    assert!(garbage(&ns, g, 3), "past the group's targets");
    assert!(garbage(&ns, g, 40));
    let ahead = g.checked_add(1).expect("an id");
    assert!(garbage(&ns, ahead, 0), "never allocated (yet)");
    ns.apply(Op::RecoverLease {
        path: p("/f"),
        last_group_length: Some((100, g)),
    })
    .expect("recover");
    assert!(garbage(&ns, g, 0), "older than the recovered generation");
    assert!(!blocks::garbage(&ns.kv, g, 0, blocks::Generation(2)).expect("read"));
    ns.apply(Op::Delete {
        path: p("/f"),
        recursive: false,
    })
    .expect("delete");
    assert!(garbage(&ns, g, 0), "deleted");
    assert_eq!(
        ns.kv
            .get(kv::Cf::Meta, &super::keys::meta::generation(g))
            .expect("get"),
        None,
        "a deleted group leaves no generation behind"
    );
}

/// Issue 17: a writer whose lease ran out with a group open may still be writing it (cut
/// off, not dead); another holder's append waits for lease recovery to close that group
/// (and move it to its next generation) instead of taking the file over with it open.
#[test]
fn an_append_over_an_expired_writers_open_group_waits_for_recovery() {
    let mut ns = Ns::new();
    ns.create("/f", false, "w1").expect("create");
    ns.add_block("/f", "w1", 0, &[1, 2, 3]).expect("add block");
    let g = ns.groups("/f")[0].id;
    ns.now += 3_600_000;
    let append = |ns: &mut Ns| {
        ns.apply(Op::Append {
            path: p("/f"),
            holder: "w2".into(),
        })
    };
    assert_eq!(Ns::kind(append(&mut ns)), "LeaseConflict");
    assert!(
        ns.stat("/f").expect("stat").under_construction.is_some(),
        "still the first writer's, unchanged"
    );
    ns.apply(Op::RecoverLease {
        path: p("/f"),
        last_group_length: Some((4096, g)),
    })
    .expect("recover");
    assert_eq!(
        blocks::generation(&ns.kv, g).expect("generation"),
        blocks::Generation(2)
    );
    append(&mut ns).expect("the recovered file is appended to");
}

/// Issue 17 (review): lease recovery fences the writer before it ends its streams. After
/// `BeginLeaseRecovery` the writer can neither complete the file (at a length no copy may
/// have once its streams were cut short) nor add a group; no client can claim a recovery's
/// holder; a begin for a writer that renewed in time, or for a file replaced since, changes
/// nothing; a second begin renews the recovery's own lease (the wait before a stuck recovery
/// is tried again), and `RecoverLease` closes the file and its lease.
#[test]
fn beginning_lease_recovery_fences_the_writer() {
    let mut ns = Ns::new();
    ns.create("/f", false, "w1").expect("create");
    ns.add_block("/f", "w1", 0, &[1, 2, 3]).expect("add block");
    let g = ns.groups("/f")[0].id;
    let id = ns.stat("/f").expect("stat").id;
    let fence = super::recovery_holder(id);
    let begin = |ns: &mut Ns, inode, holder: &str, force| {
        ns.apply(Op::BeginLeaseRecovery {
            path: p("/f"),
            inode,
            holder: holder.into(),
            force,
        })
    };
    // The writer's lease is live: only a caller's forced recovery may fence it.
    assert_eq!(Ns::kind(begin(&mut ns, id, "w1", false)), "LeaseConflict");
    ns.now += 3_600_000;
    // Another file now, or another writer: nothing happens.
    let other = InodeId(id.0 + 1000);
    assert_eq!(
        Ns::kind(begin(&mut ns, other, "w1", false)),
        "InvalidArgument"
    );
    assert_eq!(Ns::kind(begin(&mut ns, id, "w9", false)), "LeaseConflict");
    begin(&mut ns, id, "w1", false).expect("begin");
    assert_eq!(
        ns.stat("/f")
            .expect("stat")
            .under_construction
            .map(|u| u.holder),
        Some(fence.clone())
    );
    assert_eq!(Ns::kind(ns.complete("/f", "w1", 4096)), "LeaseConflict");
    assert_eq!(
        Ns::kind(ns.add_block("/f", "w1", 4096, &[1, 2, 3])),
        "LeaseConflict"
    );
    assert!(
        lease_of(&ns, "w1").is_none(),
        "the writer's lease went with its file"
    );
    for op in [
        Op::Complete {
            path: p("/f"),
            holder: fence.clone(),
            length: 4096,
        },
        Op::RenewLease {
            holder: fence.clone(),
        },
        Op::RenewLease {
            holder: format!("{}other", super::RECOVERY_PREFIX),
        },
    ] {
        assert_eq!(Ns::kind(ns.apply(op)), "InvalidArgument", "reserved");
    }
    let first = lease_of(&ns, &fence)
        .expect("the recovery's lease")
        .expiry_ms;
    ns.now += 1_000;
    begin(&mut ns, id, "w1", false).expect("begin again");
    assert!(
        lease_of(&ns, &fence).expect("lease").expiry_ms > first,
        "renewed"
    );
    ns.apply(Op::RecoverLease {
        path: p("/f"),
        last_group_length: Some((4096, g)),
    })
    .expect("recover");
    let f = ns.stat("/f").expect("stat");
    assert!(f.under_construction.is_none());
    assert_eq!(f.length, 4096);
    assert!(lease_of(&ns, &fence).is_none());
    assert_eq!(
        Ns::kind(begin(&mut ns, id, "w1", true)),
        "NotUnderConstruction"
    );
}

/// The federation's mount table as journaled (DESIGN §10): edits apply in order, a refused
/// one changes nothing, and the table reads back whole.
#[test]
fn the_mount_table_is_edited_through_the_journal() {
    use crate::federation::{Destination, NameserviceId};
    let ns_id = |n: &str| NameserviceId::parse(n).expect("name");
    let to = |n: &str, path: &str| Destination {
        nameservice: ns_id(n),
        path: p(path),
    };
    let mut ns = Ns::new();
    assert!(super::mounts::load(&ns.kv).expect("load").is_empty());
    ns.apply(Op::MountAdd {
        at: p("/user"),
        to: to("ns1", "/user"),
    })
    .expect("add");
    ns.apply(Op::MountAdd {
        at: p("/logs"),
        to: to("ns2", "/"),
    })
    .expect("add");
    let before = super::mounts::load(&ns.kv).expect("load");
    assert_eq!(
        Ns::kind(ns.apply(Op::MountAdd {
            at: p("/user"),
            to: to("ns3", "/")
        })),
        "AlreadyExists"
    );
    assert_eq!(
        Ns::kind(ns.apply(Op::MountAdd {
            at: p("/"),
            to: to("ns3", "/")
        })),
        "InvalidArgument"
    );
    assert_eq!(
        Ns::kind(ns.apply(Op::MountRemove { at: p("/nothing") })),
        "NotFound"
    );
    assert_eq!(super::mounts::load(&ns.kv).expect("load"), before);
    ns.apply(Op::SetDefaultNameservice {
        nameservice: Some(ns_id("ns1")),
    })
    .expect("default");
    ns.apply(Op::MountRemove { at: p("/logs") })
        .expect("remove");
    let table = super::mounts::load(&ns.kv).expect("load");
    assert_eq!(table.len(), 1);
    assert_eq!(table.default_nameservice(), Some(&ns_id("ns1")));
    let r = table.resolve(&p("/logs/x")).expect("resolve");
    assert_eq!((r.nameservice, r.path), (ns_id("ns1"), p("/logs/x")));
}

/// `MountMove` (balance's switch) is a compare-and-set on one mount point: it moves the
/// mount only from the destination it names, in one entry.
#[test]
fn a_mount_moves_in_one_entry_from_the_destination_it_names() {
    use crate::federation::{Destination, NameserviceId};
    let to = |n: &str, path: &str| Destination {
        nameservice: NameserviceId::parse(n).expect("name"),
        path: p(path),
    };
    let mut ns = Ns::new();
    ns.apply(Op::MountAdd {
        at: p("/data"),
        to: to("ns1", "/data"),
    })
    .expect("add");
    let moved = |from: Destination| Op::MountMove {
        at: p("/data"),
        from,
        to: to("ns2", "/data"),
    };
    assert_eq!(
        Ns::kind(ns.apply(moved(to("ns3", "/data")))),
        "InvalidArgument"
    );
    assert_eq!(
        Ns::kind(ns.apply(Op::MountMove {
            at: p("/elsewhere"),
            from: to("ns1", "/data"),
            to: to("ns2", "/data"),
        })),
        "NotFound"
    );
    ns.apply(moved(to("ns1", "/data"))).expect("move");
    let r = super::mounts::load(&ns.kv)
        .expect("load")
        .resolve(&p("/data/x"))
        .expect("resolve");
    assert_eq!((r.nameservice.as_str(), r.path), ("ns2", p("/data/x")));
    // Done once: a second move from the old destination is refused.
    assert_eq!(
        Ns::kind(ns.apply(moved(to("ns1", "/data")))),
        "InvalidArgument"
    );
}

/// A frozen path (balance's read-only window) refuses every change at or below it and any
/// that would move or remove it, to anyone, changing nothing; snapshots of it may still be
/// taken; the superuser may move the frozen directory itself, and the freeze stays on the
/// path; lifting it makes the path writable again.
#[test]
fn a_frozen_path_refuses_every_change_under_it_until_thawed() {
    let root = permission::Access {
        superuser: true,
        ..user("ops", &[])
    };
    let alice = user("alice", &[]);
    let mut ns = Ns::new();
    ns.mkdir("/a/data/sub", true).expect("mkdir");
    ns.mkdir("/a/other", true).expect("mkdir");
    ns.create("/a/data/f", false, "w").expect("create");
    let freeze = |frozen| Op::Freeze {
        path: p("/a/data"),
        frozen,
    };
    assert_eq!(
        Ns::kind(ns.apply_as(Some(&alice), freeze(true))),
        "PermissionDenied"
    );
    ns.apply_as(Some(&root), freeze(true)).expect("freeze");
    assert_eq!(
        Ns::kind(ns.apply_as(Some(&root), freeze(true))),
        "AlreadyExists"
    );
    assert_eq!(
        super::freeze::load(&ns.kv)
            .expect("load")
            .get(&p("/a/data")),
        Some(&1_000)
    );
    let refused = [
        ns.mkdir("/a/data/new", false),
        ns.create("/a/data/sub/g", false, "w"),
        ns.apply(Op::SetTimes {
            path: p("/a/data"),
            mtime_ms: Some(5),
            atime_ms: None,
        }),
        ns.apply(Op::Delete {
            path: p("/a/data/f"),
            recursive: false,
        }),
        // Moving it away, or something into it, or removing what holds it.
        ns.apply_as(
            Some(&alice),
            Op::Rename {
                src: p("/a/data"),
                dst: p("/a/moved"),
                overwrite: false,
            },
        ),
        ns.apply(Op::Rename {
            src: p("/a/other"),
            dst: p("/a/data/other"),
            overwrite: false,
        }),
        ns.apply_as(
            Some(&root),
            Op::Rename {
                src: p("/a"),
                dst: p("/b"),
                overwrite: false,
            },
        ),
        ns.apply_as(
            Some(&root),
            Op::Delete {
                path: p("/a"),
                recursive: true,
            },
        ),
        ns.apply_as(
            Some(&root),
            Op::Delete {
                path: p("/a/data"),
                recursive: true,
            },
        ),
    ];
    for r in refused {
        assert!(
            matches!(r, Err(NsError::ReadOnly { ref frozen, .. }) if frozen == "/a/data"),
            "{r:?}"
        );
    }
    // Beside it, and reads, go on; so does a snapshot of it.
    ns.mkdir("/a/other/x", false).expect("beside");
    assert!(ns.stat("/a/data/f").is_ok());
    ns.apply_as(Some(&root), Op::AllowSnapshot { path: p("/a/data") })
        .expect("allow");
    ns.apply(Op::CreateSnapshot {
        path: p("/a/data"),
        name: Some("s1".into()),
    })
    .expect("snapshot while frozen");
    // Its owner may not delete or rename it while frozen; the superuser may.
    for op in [
        Op::DeleteSnapshot {
            path: p("/a/data"),
            name: "s1".into(),
        },
        Op::RenameSnapshot {
            path: p("/a/data"),
            from: "s1".into(),
            to: "s2".into(),
        },
    ] {
        assert_eq!(Ns::kind(ns.apply_as(Some(&alice), op)), "ReadOnly");
    }
    ns.apply_as(
        Some(&root),
        Op::RenameSnapshot {
            path: p("/a/data"),
            from: "s1".into(),
            to: "s2".into(),
        },
    )
    .expect("the superuser's");
    // The superuser moves the directory itself; the path stays frozen.
    ns.mkdir("/trash", false).expect("trash");
    ns.apply_as(
        Some(&root),
        Op::Rename {
            src: p("/a/data"),
            dst: p("/trash/data"),
            overwrite: false,
        },
    )
    .expect("own move");
    assert!(matches!(
        ns.mkdir("/a/data", false),
        Err(NsError::ReadOnly { .. })
    ));
    ns.mkdir("/trash/data/kept", false)
        .expect("moved out of the freeze");
    ns.apply_as(Some(&root), freeze(false)).expect("thaw");
    assert_eq!(
        Ns::kind(ns.apply_as(Some(&root), freeze(false))),
        "NotFound"
    );
    ns.mkdir("/a/data", false).expect("writable again");
}

/// The upgrade's steps (DESIGN §11): finalize and rollback need a prepared upgrade, a second
/// prepare is refused, and finalize raises the level (never lowers it).
#[test]
fn an_upgrade_is_prepared_then_finalized_or_rolled_back() {
    use super::upgrade::{self, UpgradeStep};
    use crate::level::Level;
    let mut ns = Ns::new();
    let state = |ns: &Ns| upgrade::load(&ns.kv).expect("load");
    assert_eq!(state(&ns).level, Level::FIRST);
    assert_eq!(
        Ns::kind(ns.apply(Op::Upgrade(UpgradeStep::Rollback))),
        "NotFound"
    );
    assert_eq!(
        Ns::kind(ns.apply(Op::Upgrade(UpgradeStep::Finalize { to: Level(2) }))),
        "NotFound"
    );
    ns.apply(Op::Upgrade(UpgradeStep::Prepare))
        .expect("prepare");
    assert_eq!(state(&ns).prepared_ms, Some(1_000));
    assert_eq!(
        Ns::kind(ns.apply(Op::Upgrade(UpgradeStep::Prepare))),
        "AlreadyExists"
    );
    ns.apply(Op::Upgrade(UpgradeStep::Rollback))
        .expect("rollback");
    assert_eq!(state(&ns).prepared_ms, None);
    ns.apply(Op::Upgrade(UpgradeStep::Prepare))
        .expect("prepare");
    ns.apply(Op::Upgrade(UpgradeStep::Finalize { to: Level(2) }))
        .expect("finalize");
    assert_eq!(
        state(&ns),
        upgrade::UpgradeState {
            level: Level(2),
            prepared_ms: None
        }
    );
    ns.apply(Op::Upgrade(UpgradeStep::Prepare))
        .expect("prepare");
    assert_eq!(
        Ns::kind(ns.apply(Op::Upgrade(UpgradeStep::Finalize { to: Level(1) }))),
        "InvalidArgument"
    );
    // Never past the next level (one no binary writes would stop every member).
    assert_eq!(
        Ns::kind(ns.apply(Op::Upgrade(UpgradeStep::Finalize {
            to: Level(u16::MAX)
        }))),
        "InvalidArgument"
    );
    assert_eq!(state(&ns).level, Level(2));
    ns.apply(Op::Upgrade(UpgradeStep::Finalize { to: Level(2) }))
        .expect("an upgrade that changed no format ends at the same level");
}

/// The caller's machine is recorded on the file it opens only from format level 2 on (DESIGN
/// §11): below it, even a caller that carries one gets an inode every binary reads.
#[test]
fn a_writers_machine_is_recorded_only_from_format_level_2() {
    use crate::level::Level;
    let create = |path: &str| Op::Create {
        path: p(path),
        overwrite: false,
        create_parents: false,
        permission: 0o644,
        owner: "root".into(),
        group: None,
        policy: None,
        holder: "w".into(),
        block_size: BLOCK,
    };
    let root = permission::Access {
        superuser: true,
        machine: "10.0.0.9".into(),
        ..user("root", &[])
    };
    let mut ns = Ns::new();
    let machine_of = |out: OpOutput| match out {
        OpOutput::Inode(i) => i.under_construction.expect("open").client_machine,
        other => panic!("{other:?}"),
    };
    let out = ns.apply_as(Some(&root), create("/a")).expect("create");
    assert_eq!(machine_of(out), "");
    if cfg!(feature = "next-format") {
        let ctx = ns.ctx();
        let mut txn = Txn::new(&ns.kv);
        txn.set_level(Level(2));
        let out = tree::apply_as(&mut txn, &ctx, Some(&root), &create("/b")).expect("create");
        assert_eq!(machine_of(out), "10.0.0.9");
    }
}
