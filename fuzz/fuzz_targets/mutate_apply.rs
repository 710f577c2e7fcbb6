//! A client's `Mutate` request from the wire to the store: prost decode ->
//! `metaserver::service::convert` (the one place a request is validated) -> the bounds checked
//! before journaling -> what the leader fixes (`prepare`: default block size, targets) ->
//! `namespace::tree::apply_as` (permissions, then the operation) over the in-memory store,
//! several operations per write overlay as the state machine applies an entry's batch.
//!
//! Properties: nothing panics, whatever the bytes; an operation that fails with a namespace
//! error leaves the store byte for byte as it was (every column family compared: a failed
//! operation inside a batch must not leave half its writes for the next one to see, nor
//! commit them); no operation fails with a store error (the namespace reads back everything
//! it wrote); and after every batch the tree is consistent: each directory reachable from
//! `/` counts exactly the entries it lists, and each entry's inode names that directory as
//! its parent under that name.
//!
//! Inputs are steps: raw bytes for prost (its decoder and the conversion of whatever it
//! makes), requests built from a small vocabulary of names (so that operations meet and
//! build real trees; encoded and decoded again on the way), reclaim steps (the active's
//! own work after recursive deletes), and commits.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use raftfs_core::id::BlockServerId;
use raftfs_core::namespace::blocks::GroupId;
use raftfs_core::namespace::inode::ROOT_ID;
use raftfs_core::namespace::kv::{Cf, KvPair, KvRead, MemKv, Txn};
use raftfs_core::namespace::permission::Access;
use raftfs_core::namespace::{ApplyCtx, ApplyError, NsPath, Op, tree};
use raftfs_fuzz::{Name, Num, PolicyName, Principal, WirePath};
use raftfs_metaserver::service::convert;
use raftfs_proto as pb;
use raftfs_proto::mutate_request::Op as PbOp;

#[derive(Debug, Arbitrary)]
struct Input {
    now_ms: u64,
    lease_ms: u16,
    /// Who the operations run as (`None`: the active's own work, no permission check).
    caller: Option<(Principal, Vec<Principal>, bool)>,
    steps: Vec<Step>,
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// Bytes as a `MutateRequest`, whatever prost makes of them.
    Wire(Vec<u8>),
    /// A request built from the vocabulary.
    Built(Built),
    /// The active's reclaim of detached subtrees, with its budget.
    Reclaim(u8),
    /// The entry ends: its overlay is committed to the store.
    Commit,
}

#[derive(Debug, Arbitrary)]
enum Built {
    Mkdir(WirePath, bool, u16, Principal, Principal),
    Create {
        path: WirePath,
        overwrite: bool,
        parents: bool,
        permission: u16,
        group: Principal,
        policy: PolicyName,
        holder: Principal,
        block_size: Num,
    },
    Complete(WirePath, Principal, Num),
    Append(WirePath, Principal),
    Rename(WirePath, WirePath, bool),
    Delete(WirePath, bool),
    SetPermission(WirePath, u32),
    SetOwner(WirePath, Principal, Principal),
    SetTimes(WirePath, Option<u64>, Option<u64>),
    SetStoragePolicy(WirePath, PolicyName),
    RenewLease(Principal),
    /// With the length the leader measured (or not).
    RecoverLease(WirePath, Option<(Num, u64)>),
    Symlink(WirePath, String, bool),
    SetXattr(WirePath, XattrName, Vec<u8>, Option<Vec<u8>>, bool),
    RemoveXattr(WirePath, XattrName),
    AppendXattr(WirePath, XattrName, Vec<u8>),
    /// With how many targets the leader found (`None`: as many as the file's width).
    AddBlock(WirePath, Principal, Num, Option<u8>),
    SetThrottle(Option<u64>, Vec<(Name, Name, u64)>, Vec<(Name, Name)>),
    /// The federation's mount table (a name from the vocabulary may not be a nameservice's).
    MountAdd(WirePath, Name, WirePath),
    MountRemove(WirePath),
    SetDefaultNameservice(Option<Name>),
    /// A blockserver admin change (any id, any change number, any duration).
    SetAdminState(u64, i32, u64),
    /// An upgrade step (any step number, any level).
    Upgrade(i32, u32),
}

#[derive(Debug, Arbitrary)]
struct XattrName(Name, u8);

impl XattrName {
    fn get(&self) -> String {
        const SPACES: [&str; 4] = ["user.", "trusted.", "", "bogus."];
        format!("{}{}", SPACES[usize::from(self.1) % SPACES.len()], self.0.0)
    }
}

impl Built {
    /// The wire request, with the extras the leader would fix (targets, recovered length).
    fn wire(self) -> (PbOp, Option<u8>, Option<(u64, GroupId)>) {
        let (mut targets, mut recovered) = (None, None);
        let op = match self {
            Built::Mkdir(p, parents, permission, owner, group) => PbOp::Mkdir(pb::MkdirOp {
                path: p.0,
                parents,
                permission: u32::from(permission),
                owner: owner.0,
                group: group.0,
            }),
            Built::Create {
                path,
                overwrite,
                parents,
                permission,
                group,
                policy,
                holder,
                block_size,
            } => PbOp::Create(pb::CreateOp {
                path: path.0,
                overwrite,
                create_parents: parents,
                permission: u32::from(permission),
                owner: String::new(),
                group: group.0,
                storage_policy: policy.0,
                lease_holder: holder.0,
                block_size: block_size.0,
            }),
            Built::Complete(p, h, n) => PbOp::Complete(pb::CompleteOp {
                path: p.0,
                lease_holder: h.0,
                length: n.0,
            }),
            Built::Append(p, h) => PbOp::Append(pb::AppendOp {
                path: p.0,
                lease_holder: h.0,
            }),
            Built::Rename(s, d, overwrite) => PbOp::Rename(pb::RenameOp {
                src: s.0,
                dst: d.0,
                overwrite,
            }),
            Built::Delete(p, recursive) => PbOp::Delete(pb::DeleteOp {
                path: p.0,
                recursive,
            }),
            Built::SetPermission(p, permission) => PbOp::SetPermission(pb::SetPermissionOp {
                path: p.0,
                permission,
            }),
            Built::SetOwner(p, o, g) => PbOp::SetOwner(pb::SetOwnerOp {
                path: p.0,
                owner: o.0,
                group: g.0,
            }),
            Built::SetTimes(p, mtime_ms, atime_ms) => PbOp::SetTimes(pb::SetTimesOp {
                path: p.0,
                mtime_ms,
                atime_ms,
            }),
            Built::SetStoragePolicy(p, policy) => PbOp::SetStoragePolicy(pb::SetStoragePolicyOp {
                path: p.0,
                policy: policy.0,
            }),
            Built::RenewLease(h) => PbOp::RenewLease(pb::RenewLeaseOp { lease_holder: h.0 }),
            Built::RecoverLease(p, r) => {
                recovered = r.map(|(n, g)| (n.0, GroupId(g)));
                PbOp::RecoverLease(pb::RecoverLeaseOp { path: p.0 })
            }
            Built::Symlink(p, target, create_parents) => PbOp::Symlink(pb::SymlinkOp {
                path: p.0,
                target,
                create_parents,
            }),
            Built::SetXattr(p, name, value, expected, expect_absent) => {
                PbOp::SetXattr(pb::SetXattrOp {
                    path: p.0,
                    name: name.get(),
                    value,
                    expected,
                    expect_absent,
                })
            }
            Built::RemoveXattr(p, name) => PbOp::RemoveXattr(pb::RemoveXattrOp {
                path: p.0,
                name: name.get(),
            }),
            Built::AppendXattr(p, name, value) => PbOp::AppendXattr(pb::AppendXattrOp {
                path: p.0,
                name: name.get(),
                value,
            }),
            Built::AddBlock(p, h, len, count) => {
                targets = count;
                PbOp::AddBlock(pb::AddBlockOp {
                    path: p.0,
                    lease_holder: h.0,
                    file_length: len.0,
                    exclude_nodes: Vec::new(),
                })
            }
            Built::SetThrottle(node, pairs, racks) => PbOp::SetThrottle(pb::SetThrottleOp {
                node_bytes_per_sec: node,
                rack_pairs: pairs
                    .iter()
                    .map(|(f, t, b)| pb::RackPairBudget {
                        from: f.0.clone(),
                        to: t.0.clone(),
                        bytes_per_sec: *b,
                    })
                    .collect(),
                racks: racks
                    .iter()
                    .map(|(r, d)| pb::RackDatacenter {
                        rack: r.0.clone(),
                        datacenter: d.0.clone(),
                    })
                    .collect(),
                datacenter_pairs: Vec::new(),
            }),
            Built::MountAdd(at, ns, path) => PbOp::MountAdd(pb::MountAddOp {
                at: at.0,
                nameservice: ns.0,
                path: path.0,
            }),
            Built::MountRemove(at) => PbOp::MountRemove(pb::MountRemoveOp { at: at.0 }),
            Built::SetDefaultNameservice(ns) => {
                PbOp::SetDefaultNameservice(pb::SetDefaultNameserviceOp {
                    nameservice: ns.map(|n| n.0).unwrap_or_default(),
                })
            }
            Built::Upgrade(step, level) => PbOp::Upgrade(pb::UpgradeOp { step, level }),
            Built::SetAdminState(server, change, maintenance_ms) => {
                PbOp::SetAdminState(pb::SetAdminStateOp {
                    server,
                    change,
                    maintenance_ms,
                })
            }
        };
        (op, targets, recovered)
    }
}

/// Every column family's contents, through `kv` (the overlay, or the store).
fn dump<R: KvRead + ?Sized>(kv: &R) -> Vec<Vec<KvPair>> {
    Cf::ALL
        .iter()
        .map(|cf| kv.scan(*cf, &[], None, usize::MAX).expect("scan"))
        .collect()
}

/// What the service does between conversion and proposal: the caller owns what it creates
/// and holds leases under its own name (`as_owner`), the default block size, the leader's
/// choice of targets and of a recovered length (`prepare`).
fn prepare<R: KvRead + ?Sized>(
    kv: &R,
    access: Option<&Access>,
    mut op: Op,
    targets: Option<u8>,
    recovered: Option<(u64, GroupId)>,
) -> Op {
    if let Some(a) = access {
        match &mut op {
            Op::Mkdir { owner, .. } | Op::Symlink { owner, .. } => owner.clone_from(&a.user),
            Op::Create { owner, holder, .. } => {
                owner.clone_from(&a.user);
                *holder = format!("{}/{holder}", a.user);
            }
            Op::Append { holder, .. }
            | Op::Complete { holder, .. }
            | Op::AddBlock { holder, .. }
            | Op::RenewLease { holder } => *holder = format!("{}/{holder}", a.user),
            _ => {}
        }
    }
    match &mut op {
        Op::Create { block_size, .. } if *block_size == 0 => *block_size = 128 << 20,
        Op::AddBlock {
            path, targets: t, ..
        } => {
            let width = tree::stat(kv, path).map_or(3, |f| f.policy.width());
            let n = targets.map_or(width, |n| usize::from(n) % (width + 2));
            *t = (1..=n as u64).map(BlockServerId).collect();
        }
        Op::RecoverLease {
            last_group_length, ..
        } => *last_group_length = recovered,
        _ => {}
    }
    op
}

/// Applies one operation in `txn`; a namespace error must leave it as it was.
fn apply<R: KvRead + ?Sized>(
    txn: &mut Txn<'_, R>,
    ctx: &ApplyCtx,
    access: Option<&Access>,
    op: &Op,
) {
    let before = dump(txn);
    match tree::apply_as(txn, ctx, access, op) {
        Ok(_) => {}
        Err(ApplyError::Ns(e)) => {
            assert!(
                dump(txn) == before,
                "{} failed ({e}) but changed the store",
                op.name()
            );
        }
        Err(ApplyError::Store(e)) => panic!("{}: store error {e}", op.name()),
    }
}

/// Each directory reachable from `/` (up to a bound) lists exactly `children` entries, each
/// of whose inodes names it as parent under the entry's name.
fn check_tree(kv: &MemKv) {
    let mut queue = vec![NsPath::root()];
    let mut seen = 0;
    while let Some(path) = queue.pop() {
        seen += 1;
        if seen > 256 {
            return;
        }
        let dir = tree::stat(kv, &path).expect("a listed path resolves");
        let (entries, more) = tree::list(kv, &path, None, 4096).expect("a directory lists");
        assert!(!more);
        assert_eq!(dir.children, entries.len() as u64, "children of {path}");
        for e in entries {
            assert_eq!(e.parent, dir.id, "parent of {path}/{}", e.name);
            assert_ne!(e.id, ROOT_ID);
            let child = path.child(&e.name);
            assert_eq!(tree::stat(kv, &child).map(|i| i.id).ok(), Some(e.id));
            if e.is_dir() {
                queue.push(child);
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let ctx = ApplyCtx {
        now_ms: input.now_ms,
        lease_ms: u64::from(input.lease_ms),
    };
    let access = input.caller.map(|(user, groups, superuser)| Access {
        user: user.0,
        groups: groups.into_iter().map(|g| g.0).collect(),
        superuser,
        machine: String::new(),
    });
    let access = access.as_ref();
    let mut kv = MemKv::new();
    let mut steps = input.steps.into_iter().peekable();
    while steps.peek().is_some() {
        let mut txn = Txn::new(&kv);
        for step in steps.by_ref() {
            let (req, targets, recovered) = match step {
                Step::Commit => break,
                Step::Reclaim(budget) => {
                    let op = Op::Reclaim {
                        budget: u64::from(budget),
                    };
                    apply(&mut txn, &ctx, None, &op);
                    continue;
                }
                Step::Wire(bytes) => match pb::MutateRequest::decode(bytes.as_slice()) {
                    Ok(req) => (req, None, None),
                    Err(_) => continue,
                },
                Step::Built(b) => {
                    let (op, targets, recovered) = b.wire();
                    let req = pb::MutateRequest {
                        header: None,
                        op: Some(op),
                    };
                    let bytes = req.encode_to_vec();
                    let req = pb::MutateRequest::decode(bytes.as_slice()).expect("decodes");
                    (req, targets, recovered)
                }
            };
            if convert::caller(req.header.as_ref()).is_err() {
                continue;
            }
            let Ok(op) = convert::op(req.op) else {
                continue;
            };
            if op.check_bounds().is_err() {
                continue;
            }
            let op = prepare(&txn, access, op, targets, recovered);
            apply(&mut txn, &ctx, access, &op);
        }
        let writes = txn.into_writes();
        kv.commit(writes);
        check_tree(&kv);
    }
});
