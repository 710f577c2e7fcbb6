//! The journal's record formats: golden fixtures of every family at every version, refusal
//! of newer versions (also of a batch nested in an entry), typed refusals where the stores
//! read them, and round trips of generated values.
//!
//! The fixtures in `metaserver/tests/golden/` are records as released binaries wrote them:
//! never regenerate or edit one. `RAFTFS_WRITE_GOLDEN=1 cargo test -p raftfs-metaserver --lib
//! journal::format` writes the fixtures that do not exist yet and leaves the others.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::PathBuf;

use openraft::error::{Fatal, InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest as RaftVoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta,
    SnapshotSegmentId, StoredMembership, Vote,
};
use proptest::prelude::*;
use raftfs_core::arbitrary::{block_group, inode, name, policy};
use raftfs_core::format::{self, FormatError, Schema};
use raftfs_core::id::{BlockServerId, GroupId, InodeId};

use super::rpc;
use super::*;
use crate::journal::{CallId, ClientId, MemberId, TypeConfig};
use crate::namespace::blocks::BlockGroup;
use crate::namespace::inode::{Inode, InodeKind, UnderConstruction};
use crate::namespace::permission::Access;
use crate::namespace::throttle::ThrottleChange;
use crate::namespace::{ApplyCtx, NsError, NsPath, Op, OpOutput, XattrExpect};
use raftfs_core::{EcCodec, StoragePolicy};

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.bin"))
}

/// Checks `value` against the fixture `golden/<name>.bin`, a record of family `S` at
/// `version` (`same` compares values; openraft's AppendEntries request has no `PartialEq`):
/// the fixture decodes to `value`, and (at the current version) `value` encodes to the
/// fixture. Also: the same record with a newer version is refused as unknown, and every
/// truncation of it as corrupt. Returns the fixture.
fn golden_by<S: Schema>(
    name: &str,
    version: u16,
    value: &S::Value,
    same: impl Fn(&S::Value, &S::Value) -> bool,
) -> Vec<u8>
where
    S::Value: Debug,
{
    let path = golden_path(name);
    if std::env::var_os("RAFTFS_WRITE_GOLDEN").is_some_and(|v| v == "1") && !path.exists() {
        assert_eq!(
            version,
            S::CURRENT,
            "only the current version can be written"
        );
        let bytes = format::encode::<S>(value).expect("encode");
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write fixture");
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (a new fixture is written by RAFTFS_WRITE_GOLDEN=1)",
            path.display()
        )
    });
    assert_eq!(
        format::version_of(S::RECORD, &golden),
        Ok(version),
        "{name}"
    );
    let decoded = format::decode::<S>(&golden)
        .unwrap_or_else(|e| panic!("{name}: the fixture no longer decodes: {e}"));
    assert!(
        same(&decoded, value),
        "{name}: the fixture decodes to {decoded:?}, not {value:?}"
    );
    if version == S::CURRENT {
        assert_eq!(
            format::encode::<S>(value).expect("encode"),
            golden,
            "{name}: the encoding changed; a format change needs a new version (raftfs_core::format)"
        );
    }
    let mut newer = golden.clone();
    newer[0] = u8::try_from(S::CURRENT + 1).expect("versions below 127 are one byte");
    assert_eq!(
        format::decode::<S>(&newer).err(),
        Some(FormatError::UnknownVersion {
            record: S::RECORD,
            version: S::CURRENT + 1,
            newest: S::CURRENT,
        }),
        "{name}"
    );
    for len in 0..golden.len() {
        assert!(
            matches!(
                format::decode::<S>(&golden[..len]),
                Err(FormatError::Corrupt { .. })
            ),
            "{name} truncated to {len} bytes"
        );
    }
    golden
}

/// A fixture of a container family at its current version that holds a nested record of an
/// older version (a raft entry with a version-1 batch): it still decodes to `value`, but
/// `value` now encodes with the nested record at its current version, so only the decoding
/// is checked; [`golden_by`] checks a fixture written with the current nesting.
fn golden_nesting_older<S: Schema>(
    name: &str,
    value: &S::Value,
    same: impl Fn(&S::Value, &S::Value) -> bool,
) where
    S::Value: Debug,
{
    let path = golden_path(name);
    let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        format::version_of(S::RECORD, &golden),
        Ok(S::CURRENT),
        "{name}"
    );
    let decoded = format::decode::<S>(&golden)
        .unwrap_or_else(|e| panic!("{name}: the fixture no longer decodes: {e}"));
    assert!(
        same(&decoded, value),
        "{name}: the fixture decodes to {decoded:?}, not {value:?}"
    );
}

fn golden<S: Schema>(name: &str, version: u16, value: &S::Value) -> Vec<u8>
where
    S::Value: Debug + PartialEq,
{
    golden_by::<S>(name, version, value, PartialEq::eq)
}

// ---------------------------------------------------------------- values of the fixtures

fn path(s: &str) -> NsPath {
    NsPath::parse(s).expect("a valid path")
}

const HOLDER: &str = "raftfs-client-00112233445566778899aabbccddeeff";

/// One operation of every variant.
fn every_op() -> Vec<Op> {
    let ec = StoragePolicy::ErasureCoded {
        codec: EcCodec::Rs,
        data: 6,
        parity: 3,
        cell_kib: 1024,
    };
    vec![
        Op::Mkdir {
            path: path("/a/b"),
            parents: true,
            permission: 0o755,
            owner: "alice".into(),
            group: Some("staff".into()),
        },
        Op::Create {
            path: path("/a/b/f"),
            overwrite: false,
            create_parents: true,
            permission: 0o644,
            owner: "alice".into(),
            group: None,
            policy: Some(ec.clone()),
            holder: HOLDER.into(),
            block_size: 128 << 20,
        },
        Op::Complete {
            path: path("/a/b/f"),
            holder: HOLDER.into(),
            length: 12_345_678,
        },
        Op::Append {
            path: path("/a/b/f"),
            holder: HOLDER.into(),
        },
        Op::Rename {
            src: path("/a/b/f"),
            dst: path("/a/g"),
            overwrite: true,
        },
        Op::Delete {
            path: path("/a"),
            recursive: true,
        },
        Op::SetPermission {
            path: path("/a"),
            permission: 0o1777,
        },
        Op::SetOwner {
            path: path("/a"),
            owner: Some("bob".into()),
            group: None,
        },
        Op::SetTimes {
            path: path("/a"),
            mtime_ms: Some(1_767_225_600_000),
            atime_ms: None,
        },
        Op::SetStoragePolicy {
            path: path("/a"),
            policy: StoragePolicy::Replicated(2),
        },
        Op::RenewLease {
            holder: HOLDER.into(),
        },
        Op::RecoverLease {
            path: path("/a/b/f"),
            last_group_length: Some((6 << 20, GroupId((1 << 20) + 7))),
        },
        Op::Symlink {
            path: path("/l"),
            target: "/a/b/f".into(),
            create_parents: false,
            owner: "alice".into(),
        },
        Op::SetXattr {
            path: path("/a"),
            name: "user.k".into(),
            value: b"v2".to_vec(),
            expect: XattrExpect::Value(b"v1".to_vec()),
        },
        Op::RemoveXattr {
            path: path("/a"),
            name: "user.k".into(),
        },
        Op::AppendXattr {
            path: path("/a"),
            name: "user.list".into(),
            value: b" 7".to_vec(),
        },
        Op::AddBlock {
            path: path("/a/b/f"),
            holder: HOLDER.into(),
            file_length: 6 * (128 << 20),
            targets: [3, 1, 4, 15, 9, 2, 6, 5, 35].map(BlockServerId).to_vec(),
        },
        Op::SetThrottle(ThrottleChange {
            node_bytes_per_sec: Some(100 << 20),
            rack_pairs: vec![("r1".into(), "r2".into(), 10 << 20)],
            racks: vec![("r1".into(), "dc1".into()), ("r2".into(), "dc2".into())],
            datacenter_pairs: vec![("dc1".into(), "dc2".into(), 0)],
        }),
    ]
}

/// Checked against `Op`'s variants, so that a new variant cannot miss the fixture: the
/// compiler points here.
fn variant_index(op: &Op) -> usize {
    match op {
        Op::Mkdir { .. } => 0,
        Op::Create { .. } => 1,
        Op::Complete { .. } => 2,
        Op::Append { .. } => 3,
        Op::Rename { .. } => 4,
        Op::Delete { .. } => 5,
        Op::SetPermission { .. } => 6,
        Op::SetOwner { .. } => 7,
        Op::SetTimes { .. } => 8,
        Op::SetStoragePolicy { .. } => 9,
        Op::RenewLease { .. } => 10,
        Op::RecoverLease { .. } => 11,
        Op::Symlink { .. } => 12,
        Op::SetXattr { .. } => 13,
        Op::RemoveXattr { .. } => 14,
        Op::AppendXattr { .. } => 15,
        Op::AddBlock { .. } => 16,
        Op::SetThrottle(_) => 17,
        Op::Reclaim { .. } => 18,
        Op::RollBlockKey { .. } => 19,
        Op::BeginLeaseRecovery { .. } => 20,
        Op::MountAdd { .. } => 21,
        Op::MountRemove { .. } => 22,
        Op::SetDefaultNameservice { .. } => 23,
        Op::AllowSnapshot { .. } => 24,
        Op::DisallowSnapshot { .. } => 25,
        Op::CreateSnapshot { .. } => 26,
        Op::DeleteSnapshot { .. } => 27,
        Op::RenameSnapshot { .. } => 28,
        Op::Freeze { .. } => 29,
        Op::MountMove { .. } => 30,
        Op::SetAdminState { .. } => 31,
        Op::Upgrade(_) => 32,
    }
}

fn batch() -> Batch {
    Batch {
        ctx: ApplyCtx {
            now_ms: 1_767_225_600_000,
            lease_ms: 60_000,
        },
        proposals: every_op()
            .into_iter()
            .enumerate()
            .map(|(i, op)| Proposal {
                client: ClientId([u8::try_from(i).expect("few ops"); 16]),
                // Internal operations (call id 0) and client calls.
                call_id: if i % 5 == 0 {
                    CallId::UNCACHED
                } else {
                    CallId(1000 + i as u64)
                },
                op,
                access: None,
            })
            .collect(),
    }
}

fn log_id(term: u64, node: u64, index: u64) -> LogId<MemberId> {
    LogId::new(CommittedLeaderId::new(term, MemberId(node)), index)
}

fn membership() -> Membership<MemberId, BasicNode> {
    let nodes: BTreeMap<MemberId, BasicNode> = (1..=5)
        .map(|id| {
            (
                MemberId(id),
                BasicNode::new(format!("127.0.0.{}:7000", 10 + id)),
            )
        })
        .collect();
    // Joint consensus from {1,2,3} to {1,2,4}; 5 is a learner (an observer).
    Membership::new(
        vec![
            BTreeSet::from([1, 2, 3].map(MemberId)),
            BTreeSet::from([1, 2, 4].map(MemberId)),
        ],
        nodes,
    )
}

/// The batch of version 2: every operation, some run as a caller, one as the superuser.
fn batch_v2() -> Batch {
    let mut b = batch();
    for (i, p) in b.proposals.iter_mut().enumerate() {
        p.access = match i % 3 {
            0 => None,
            1 => Some(Access {
                user: "alice".into(),
                groups: vec!["staff".into(), "etl".into()],
                superuser: false,
                machine: String::new(),
            }),
            _ => Some(Access {
                user: "hdfs".into(),
                groups: Vec::new(),
                superuser: true,
                machine: String::new(),
            }),
        };
    }
    b
}

/// The three kinds of entry, the normal one holding `batch`.
fn entries_with(batch: Batch) -> Vec<Entry<TypeConfig>> {
    let mut e = entries();
    e[1].payload = EntryPayload::Normal(batch);
    e
}

fn entries() -> Vec<Entry<TypeConfig>> {
    vec![
        Entry {
            log_id: log_id(7, 2, 100),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(7, 2, 101),
            payload: EntryPayload::Normal(batch()),
        },
        Entry {
            log_id: log_id(7, 2, 102),
            payload: EntryPayload::Membership(membership()),
        },
    ]
}

fn snapshot_meta() -> SnapshotMeta<MemberId, BasicNode> {
    SnapshotMeta {
        last_log_id: Some(log_id(7, 2, 100)),
        last_membership: StoredMembership::new(Some(log_id(6, 1, 90)), membership()),
        snapshot_id: "7-100-1767225600000000000".into(),
    }
}

fn file_inode() -> Inode {
    Inode {
        id: InodeId(16_386),
        parent: InodeId(16_385),
        name: "f".into(),
        kind: InodeKind::File,
        permission: 0o644,
        owner: "alice".into(),
        group: "staff".into(),
        mtime_ms: 1_767_225_600_000,
        atime_ms: 1_767_225_600_000,
        policy: StoragePolicy::ErasureCoded {
            codec: EcCodec::Xor,
            data: 2,
            parity: 1,
            cell_kib: 1024,
        },
        length: 0,
        under_construction: Some(UnderConstruction {
            holder: HOLDER.into(),
            client_machine: String::new(),
        }),
        symlink_target: None,
        children: 0,
        block_size: 128 << 20,
        block_groups: 1,
    }
}

fn group() -> BlockGroup {
    BlockGroup {
        id: GroupId(1 << 20),
        inode: InodeId(16_386),
        index: 0,
        offset: 0,
        length: None,
        targets: [4, 8, 12].map(BlockServerId).to_vec(),
    }
}

fn every_error() -> Vec<NsError> {
    let p = || "/a/b".to_owned();
    vec![
        NsError::InvalidPath {
            path: "a//b".into(),
            reason: "empty component".into(),
        },
        NsError::NotFound(p()),
        NsError::AlreadyExists(p()),
        NsError::NotADirectory(p()),
        NsError::IsADirectory(p()),
        NsError::DirectoryNotEmpty(p()),
        NsError::ParentNotFound(p()),
        NsError::LeaseConflict {
            path: p(),
            holder: HOLDER.into(),
        },
        NsError::RenameIntoSubtree {
            src: "/a".into(),
            dst: "/a/b".into(),
        },
        NsError::RootNotAllowed("/".into()),
        NsError::NotUnderConstruction(p()),
        NsError::InvalidArgument("bad rack name".into()),
        NsError::XattrNotFound {
            path: p(),
            name: "user.k".into(),
        },
        NsError::XattrMismatch {
            path: p(),
            name: "user.k".into(),
        },
        NsError::RetryMismatch {
            call_id: 7,
            op: "rename".into(),
        },
        NsError::PermissionDenied {
            user: "bob".into(),
            what: "write".into(),
            path: p(),
        },
        NsError::Snapshot("/a/b: not a snapshottable directory".into()),
        NsError::ReadOnly {
            path: "/data/f".into(),
            frozen: "/data".into(),
        },
    ]
}

/// A retry record of version 1 (no fingerprint).
fn unchecked(result: Result<OpOutput, NsError>) -> RetryRecord {
    RetryRecord {
        fingerprint: None,
        result,
    }
}

fn vote() -> Vote<MemberId> {
    Vote::new_committed(7, MemberId(2))
}

fn append_entries(entries: Vec<Entry<TypeConfig>>) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: vote(),
        prev_log_id: Some(log_id(6, 1, 99)),
        entries,
        leader_commit: Some(log_id(6, 1, 98)),
    }
}

fn same_append_entries(
    a: &AppendEntriesRequest<TypeConfig>,
    b: &AppendEntriesRequest<TypeConfig>,
) -> bool {
    a.vote == b.vote
        && a.prev_log_id == b.prev_log_id
        && a.entries == b.entries
        && a.leader_commit == b.leader_commit
}

// ---------------------------------------------------------------- golden fixtures

#[test]
fn golden_batch_has_every_op() {
    let b = batch();
    let mut seen: Vec<usize> = b.proposals.iter().map(|p| variant_index(&p.op)).collect();
    seen.dedup();
    assert_eq!(seen, (0..18).collect::<Vec<_>>(), "every variant, in order");
    golden::<Batch>("batch-every-op-v1", 1, &b);
}

/// Version 2 carries the caller each proposal runs as.
#[test]
fn golden_batch_v2() {
    golden::<Batch>("batch-every-op-v2", 2, &batch_v2());
}

/// Variants appended to `Op` after the first fixture: a variant appended at the end changes
/// no existing record's bytes or meaning, so it stays version 1 of the batch (an older binary
/// refuses a batch that uses it as corrupt, never misreads it). One fixture per appended
/// variant, checked like the rest.
#[test]
fn golden_batch_appended_ops_v1() {
    let reclaim = Batch {
        ctx: batch().ctx,
        proposals: vec![Proposal {
            client: ClientId([0; 16]),
            call_id: CallId::UNCACHED,
            op: Op::Reclaim { budget: 10_000 },
            access: None,
        }],
    };
    assert_eq!(variant_index(&reclaim.proposals[0].op), 18);
    golden::<Batch>("batch-reclaim-v1", 1, &reclaim);
}

/// `Op::RollBlockKey`, appended at batch version 2 (the active's block keys, DESIGN §9).
#[test]
fn golden_batch_appended_ops_v2() {
    let roll = Batch {
        ctx: batch().ctx,
        proposals: vec![Proposal {
            client: ClientId([0; 16]),
            call_id: CallId::UNCACHED,
            op: Op::RollBlockKey {
                key: raftfs_core::block_token::BlockKey {
                    id: 7,
                    secret: core::array::from_fn(|i| i as u8),
                    created_ms: 1_767_225_600_000,
                    expires_ms: 1_767_265_200_000,
                },
            },
            access: None,
        }],
    };
    assert_eq!(variant_index(&roll.proposals[0].op), 19);
    golden::<Batch>("batch-roll-block-key-v2", 2, &roll);
}

/// `Op::BeginLeaseRecovery`, appended at batch version 2 (lease recovery's fence, DESIGN §9).
#[test]
fn golden_batch_begin_lease_recovery_v2() {
    let begin = Batch {
        ctx: batch().ctx,
        proposals: vec![Proposal {
            client: ClientId([0; 16]),
            call_id: CallId::UNCACHED,
            op: Op::BeginLeaseRecovery {
                path: NsPath::parse("/logs/app.log").expect("path"),
                inode: raftfs_core::id::InodeId(4242),
                holder: "alice/client-7".into(),
                force: false,
            },
            access: None,
        }],
    };
    assert_eq!(variant_index(&begin.proposals[0].op), 20);
    golden::<Batch>("batch-begin-lease-recovery-v2", 2, &begin);
}

/// The mount table's edits, appended at batch version 2 (federation, DESIGN §10).
#[test]
fn golden_batch_mount_ops_v2() {
    use raftfs_core::federation::{Destination, NameserviceId};
    let ns = |n: &str| NameserviceId::parse(n).expect("name");
    let ops = [
        Op::MountAdd {
            at: NsPath::parse("/user").expect("path"),
            to: Destination {
                nameservice: ns("ns1"),
                path: NsPath::parse("/user").expect("path"),
            },
        },
        Op::MountRemove {
            at: NsPath::parse("/logs").expect("path"),
        },
        Op::SetDefaultNameservice {
            nameservice: Some(ns("ns2")),
        },
        Op::SetDefaultNameservice { nameservice: None },
    ];
    let mounts = Batch {
        ctx: batch().ctx,
        proposals: ops
            .into_iter()
            .map(|op| Proposal {
                client: ClientId([0; 16]),
                call_id: CallId::UNCACHED,
                op,
                access: None,
            })
            .collect(),
    };
    let seen: Vec<usize> = mounts
        .proposals
        .iter()
        .map(|p| variant_index(&p.op))
        .collect();
    assert_eq!(seen, [21, 22, 23, 23]);
    golden::<Batch>("batch-mount-ops-v2", 2, &mounts);
}

/// Snapshots' operations (appended after the mount table's, in batch version 2).
#[test]
fn golden_batch_snapshot_ops_v2() {
    let ops = [
        Op::AllowSnapshot {
            path: path("/data"),
        },
        Op::DisallowSnapshot {
            path: path("/data"),
        },
        Op::CreateSnapshot {
            path: path("/data"),
            name: Some("s1".into()),
        },
        Op::CreateSnapshot {
            path: path("/data"),
            name: None,
        },
        Op::DeleteSnapshot {
            path: path("/data"),
            name: "s1".into(),
        },
        Op::RenameSnapshot {
            path: path("/data"),
            from: "s1".into(),
            to: "s2".into(),
        },
    ];
    let snapshots = Batch {
        ctx: batch().ctx,
        proposals: ops
            .into_iter()
            .map(|op| Proposal {
                client: ClientId([7; 16]),
                call_id: CallId(9),
                op,
                access: None,
            })
            .collect(),
    };
    let seen: Vec<usize> = snapshots
        .proposals
        .iter()
        .map(|p| variant_index(&p.op))
        .collect();
    assert_eq!(seen, [24, 25, 26, 26, 27, 28]);
    golden::<Batch>("batch-snapshot-ops-v2", 2, &snapshots);
}

/// `balance`'s operations (appended after the snapshots', in batch version 2).
#[test]
fn golden_batch_balance_ops_v2() {
    use raftfs_core::federation::{Destination, NameserviceId};
    let ns = |n: &str| NameserviceId::parse(n).expect("name");
    let ops = [
        Op::Freeze {
            path: path("/data"),
            frozen: true,
        },
        Op::Freeze {
            path: path("/data"),
            frozen: false,
        },
        Op::MountMove {
            at: path("/data"),
            from: Destination {
                nameservice: ns("ns1"),
                path: path("/data"),
            },
            to: Destination {
                nameservice: ns("ns2"),
                path: path("/data"),
            },
        },
    ];
    let balance = Batch {
        ctx: batch().ctx,
        proposals: ops
            .into_iter()
            .map(|op| Proposal {
                client: ClientId([8; 16]),
                call_id: CallId(10),
                op,
                access: None,
            })
            .collect(),
    };
    let seen: Vec<usize> = balance
        .proposals
        .iter()
        .map(|p| variant_index(&p.op))
        .collect();
    assert_eq!(seen, [29, 29, 30]);
    golden::<Batch>("batch-balance-ops-v2", 2, &balance);
}

/// The blockserver admin changes (DESIGN §11; appended after `balance`'s, in batch version 2).
#[test]
fn golden_batch_admin_state_ops_v2() {
    use raftfs_core::id::BlockServerId;
    use raftfs_core::namespace::admin_state::AdminChange;
    let changes = [
        AdminChange::Decommission,
        AdminChange::Maintenance { for_ms: 7_200_000 },
        AdminChange::InService,
    ];
    let admin = Batch {
        ctx: batch().ctx,
        proposals: changes
            .into_iter()
            .map(|change| Proposal {
                client: ClientId([9; 16]),
                call_id: CallId(11),
                op: Op::SetAdminState {
                    server: BlockServerId(4),
                    change,
                },
                access: None,
            })
            .collect(),
    };
    let seen: Vec<usize> = admin
        .proposals
        .iter()
        .map(|p| variant_index(&p.op))
        .collect();
    assert_eq!(seen, [31, 31, 31]);
    golden::<Batch>("batch-admin-state-ops-v2", 2, &admin);
}

/// A caller's machine (set from format level 2 on) needs batch version 3, which only the
/// `next-format` build writes; without one every build writes version 2.
#[test]
fn a_callers_machine_needs_batch_version_3() {
    let plain = batch_v2();
    assert_eq!(format::encode::<Batch>(&plain).expect("encode")[0], 2);
    let mut with_machine = batch_v2();
    if let Some(a) = with_machine.proposals[1].access.as_mut() {
        a.machine = "10.1.2.3".into();
    }
    assert!(matches!(
        format::encode_as::<Batch>(&with_machine, 2),
        Err(FormatError::Unwritable { version: 2, .. })
    ));
    let encoded = format::encode::<Batch>(&with_machine);
    if cfg!(feature = "next-format") {
        let bytes = encoded.expect("version 3");
        assert_eq!(bytes[0], 3);
        assert_eq!(format::decode::<Batch>(&bytes), Ok(with_machine));
    } else {
        assert!(matches!(
            encoded,
            Err(FormatError::Unwritable { version: 3, .. })
        ));
    }
}

/// Batch version 3 and retry result version 3 (the `next-format` build): a caller's machine,
/// and the file it opened recording it (DESIGN §11).
#[cfg(feature = "next-format")]
#[test]
fn golden_next_format_records_v3() {
    let mut with_machine = batch_v2();
    for p in &mut with_machine.proposals {
        if let Some(a) = p.access.as_mut() {
            a.machine = "10.1.2.3".into();
        }
    }
    golden::<Batch>("batch-caller-machine-v3", 3, &with_machine);
    let mut inode = file_inode();
    if let Some(uc) = inode.under_construction.as_mut() {
        uc.client_machine = "10.1.2.3".into();
    }
    golden::<RetryResult>(
        "retry-result-ok-inode-writer-machine-v3",
        3,
        &RetryRecord {
            fingerprint: Some([0x5A; 32]),
            result: Ok(OpOutput::Inode(inode)),
        },
    );
}

/// The rolling upgrade's steps (DESIGN §11; appended after the admin states', in batch
/// version 2).
#[test]
fn golden_batch_upgrade_ops_v2() {
    use raftfs_core::level::Level;
    use raftfs_core::namespace::upgrade::UpgradeStep;
    let steps = [
        UpgradeStep::Prepare,
        UpgradeStep::Finalize { to: Level(2) },
        UpgradeStep::Rollback,
    ];
    let upgrade = Batch {
        ctx: batch().ctx,
        proposals: steps
            .into_iter()
            .map(|step| Proposal {
                client: ClientId([10; 16]),
                call_id: CallId(12),
                op: Op::Upgrade(step),
                access: None,
            })
            .collect(),
    };
    let seen: Vec<usize> = upgrade
        .proposals
        .iter()
        .map(|p| variant_index(&p.op))
        .collect();
    assert_eq!(seen, [32, 32, 32]);
    golden::<Batch>("batch-upgrade-ops-v2", 2, &upgrade);
}

#[test]
fn golden_log_store_records_v1() {
    let [blank, normal, membership] = <[_; 3]>::try_from(entries()).expect("three");
    golden::<LogEntry>("raft-entry-blank-v1", 1, &blank);
    golden_nesting_older::<LogEntry>("raft-entry-normal-v1", &normal, PartialEq::eq);
    let normal = entries_with(batch_v2()).swap_remove(1);
    let normal_bytes = golden::<LogEntry>("raft-entry-normal-batch-v2-v1", 1, &normal);
    golden::<LogEntry>("raft-entry-membership-v1", 1, &membership);
    golden::<VoteRecord>("vote-committed-v1", 1, &vote());
    golden::<VoteRecord>("vote-v1", 1, &Vote::new(8, MemberId(3)));
    golden::<CommittedRecord>("committed-log-id-v1", 1, &Some(log_id(7, 2, 101)));
    golden::<CommittedRecord>("committed-log-id-none-v1", 1, &None);
    golden::<PurgedRecord>("purged-log-id-v1", 1, &log_id(6, 1, 50));
    // The entry carries the batch as its own record, byte for byte.
    let batch_bytes = format::encode::<Batch>(&batch_v2()).expect("encode");
    assert!(
        normal_bytes
            .windows(batch_bytes.len())
            .any(|w| w == batch_bytes)
    );
}

#[test]
fn golden_state_machine_records_v1() {
    golden::<AppliedRecord>("applied-log-id-v1", 1, &Some(log_id(7, 2, 102)));
    golden::<MembershipRecord>(
        "membership-v1",
        1,
        &StoredMembership::new(Some(log_id(7, 2, 102)), membership()),
    );
    golden::<MembershipRecord>("membership-initial-v1", 1, &StoredMembership::default());
    golden::<SnapshotMetaRecord>("snapshot-meta-v1", 1, &snapshot_meta());
}

#[test]
fn golden_retry_results_v1() {
    let outputs = [
        ("inode", OpOutput::Inode(file_inode())),
        ("removed", OpOutput::Removed(42)),
        ("done", OpOutput::Done),
        ("group", OpOutput::Group(file_inode(), group())),
    ];
    for (name, output) in outputs {
        golden::<RetryResult>(
            &format!("retry-result-ok-{name}-v1"),
            1,
            &unchecked(Ok(output)),
        );
    }
    // RetryMismatch came with version 2, PermissionDenied later (appended: still 2).
    for error in every_error().into_iter().filter(|e| {
        !matches!(
            e,
            NsError::RetryMismatch { .. }
                | NsError::PermissionDenied { .. }
                | NsError::Snapshot(_)
                | NsError::ReadOnly { .. }
        )
    }) {
        let name = format!("retry-result-err-{}-v1", error.kind());
        golden::<RetryResult>(&name, 1, &unchecked(Err(error)));
    }
}

/// Version 2 keeps the fingerprint of the operation the result answers.
#[test]
fn golden_retry_results_v2() {
    let op = &every_op()[0];
    golden::<RetryResult>(
        "retry-result-ok-inode-v2",
        2,
        &RetryRecord {
            fingerprint: Some(op.fingerprint()),
            result: Ok(OpOutput::Inode(file_inode())),
        },
    );
    for error in every_error() {
        let name = format!("retry-result-err-{}-v2", error.kind());
        golden::<RetryResult>(
            &name,
            2,
            &RetryRecord {
                fingerprint: Some([0xA5; 32]),
                result: Err(error),
            },
        );
    }
}

/// The retry results from before the envelope (`[1] ++ postcard` of a struct holding the
/// result) are its version 1.
#[test]
fn retry_results_written_before_the_envelope_are_version_1() {
    // The layout of then is version 2's result (inode version 1 inside).
    #[derive(Serialize)]
    struct RetryRecord<'a> {
        result: Result<super::retry_v2::OpOutputRef<'a>, &'a NsError>,
    }
    let result = Ok(OpOutput::Group(file_inode(), group()));
    let output = OpOutput::Group(file_inode(), group());
    let mut old = vec![1u8];
    old.extend(
        postcard::to_stdvec(&RetryRecord {
            result: Ok((&output).try_into().expect("v2")),
        })
        .expect("postcard"),
    );
    assert_eq!(format::decode::<RetryResult>(&old), Ok(unchecked(result)));
}

#[test]
fn golden_raft_rpcs_v1() {
    golden_nesting_older::<rpc::AppendEntries>(
        "append-entries-v1",
        &append_entries(entries()),
        same_append_entries,
    );
    golden_by::<rpc::AppendEntries>(
        "append-entries-batch-v2-v1",
        1,
        &append_entries(entries_with(batch_v2())),
        same_append_entries,
    );
    golden_by::<rpc::AppendEntries>(
        "append-entries-heartbeat-v1",
        1,
        &append_entries(Vec::new()),
        same_append_entries,
    );
    let replies = [
        ("success", Ok(AppendEntriesResponse::Success)),
        (
            "partial-success",
            Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(
                7, 2, 101,
            )))),
        ),
        ("conflict", Ok(AppendEntriesResponse::Conflict)),
        (
            "higher-vote",
            Ok(AppendEntriesResponse::HigherVote(Vote::new(8, MemberId(3)))),
        ),
        ("stopped", Err(RaftError::Fatal(Fatal::Stopped))),
    ];
    for (name, reply) in replies {
        golden::<rpc::AppendEntriesReply>(&format!("append-entries-reply-{name}-v1"), 1, &reply);
    }
    golden::<rpc::VoteRequest>(
        "vote-request-v1",
        1,
        &RaftVoteRequest::new(Vote::new(8, MemberId(3)), Some(log_id(7, 2, 102))),
    );
    golden::<rpc::VoteReply>(
        "vote-reply-v1",
        1,
        &Ok(VoteResponse::new(
            Vote::new(8, MemberId(3)),
            Some(log_id(7, 2, 101)),
            true,
        )),
    );
    golden::<rpc::InstallSnapshot>(
        "install-snapshot-v1",
        1,
        &InstallSnapshotRequest {
            vote: vote(),
            meta: snapshot_meta(),
            offset: 1 << 20,
            data: b"a chunk of the snapshot's tar".to_vec(),
            done: false,
        },
    );
    golden::<rpc::InstallSnapshotReply>(
        "install-snapshot-reply-v1",
        1,
        &Ok(InstallSnapshotResponse { vote: vote() }),
    );
    golden::<rpc::InstallSnapshotReply>(
        "install-snapshot-reply-mismatch-v1",
        1,
        &Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(
            SnapshotMismatch {
                expect: SnapshotSegmentId {
                    id: "7-100-1".into(),
                    offset: 0,
                },
                got: SnapshotSegmentId {
                    id: "7-100-1".into(),
                    offset: 1 << 20,
                },
            },
        ))),
    );
}

// ---------------------------------------------------------------- newer versions

/// `bytes` with the nested batch record inside it given version `version`.
fn with_batch_version(bytes: &[u8], version: u8) -> Vec<u8> {
    let batch = format::encode::<Batch>(&batch()).expect("encode");
    let at = bytes
        .windows(batch.len())
        .position(|w| w == batch)
        .expect("the batch is inside");
    let mut out = bytes.to_vec();
    out[at] = version;
    out
}

/// A batch of a newer version inside an entry or an AppendEntries request is refused with
/// the batch's own typed error, not taken for garbage or misread.
#[test]
fn a_newer_batch_inside_an_entry_or_a_request_is_refused_typed() {
    let newer = Batch::CURRENT + 1;
    let refusal = Err(FormatError::UnknownVersion {
        record: "batch",
        version: newer,
        newest: Batch::CURRENT,
    });
    let byte = u8::try_from(newer).expect("one byte");
    let entry = format::encode::<LogEntry>(&entries()[1]).expect("encode");
    assert_eq!(
        format::decode::<LogEntry>(&with_batch_version(&entry, byte)),
        refusal
    );
    let request = format::encode::<rpc::AppendEntries>(&append_entries(entries())).expect("enc");
    assert_eq!(
        format::decode::<rpc::AppendEntries>(&with_batch_version(&request, byte)).err(),
        refusal.err()
    );
}

/// The stores refuse a record of a newer version where they read it: the state machine does
/// not open over an applied log id it cannot read, the log store does not return a vote.
#[tokio::test]
async fn the_stores_refuse_newer_records() {
    use openraft::storage::RaftLogStorage;
    use rocksdb::WriteBatch;

    use crate::journal::log_store::LogStore;
    use crate::journal::state_machine::StateMachine;
    use crate::namespace::StoreError;

    let dir = tempfile::tempdir().expect("tempdir");
    let future = |bytes: Vec<u8>| [&[2u8][..], &bytes[1..]].concat();
    {
        let sm = StateMachine::open(dir.path(), Default::default()).expect("open");
        let db = sm.shared().db();
        let meta = db.cf_handle("meta").expect("meta");
        let applied = format::encode::<AppliedRecord>(&Some(log_id(1, 1, 1))).expect("encode");
        db.put_cf(meta, b"applied", future(applied)).expect("put");
    }
    match StateMachine::open(dir.path(), Default::default()) {
        Err(StoreError::Format {
            cf: "meta",
            source:
                FormatError::UnknownVersion {
                    record: "applied log id",
                    version: 2,
                    newest: 1,
                },
        }) => {}
        other => panic!("expected a typed refusal, got {other:?}"),
    }

    let log_dir = dir.path().join("log");
    let mut log = LogStore::open(&log_dir, &Default::default()).expect("open log");
    log.save_vote(&vote()).await.expect("save vote");
    assert_eq!(log.read_vote().await.expect("read vote"), Some(vote()));
    drop(log);
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &log_dir, ["log", "store"])
        .expect("open the log's DB");
    let mut batch = WriteBatch::default();
    batch.put_cf(
        db.cf_handle("store").expect("store"),
        b"vote",
        future(format::encode::<VoteRecord>(&vote()).expect("encode")),
    );
    db.write(batch).expect("write");
    drop(db);
    let mut log = LogStore::open(&log_dir, &Default::default()).expect("open log");
    let err = log.read_vote().await.expect_err("a vote of version 2");
    assert!(
        err.to_string().contains("vote record of version 2"),
        "{err}"
    );
}

// ---------------------------------------------------------------- generated values

fn ns_path() -> impl Strategy<Value = NsPath> {
    prop::collection::vec("[a-z0-9]{1,6}", 0..5)
        .prop_map(|c| NsPath::parse(&format!("/{}", c.join("/"))).expect("valid"))
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

fn op() -> impl Strategy<Value = Op> {
    let o = || prop::option::of(name());
    prop_oneof![
        (ns_path(), any::<bool>(), any::<u16>(), name(), o()).prop_map(
            |(path, parents, permission, owner, group)| Op::Mkdir {
                path,
                parents,
                permission,
                owner,
                group
            }
        ),
        (
            ns_path(),
            any::<(bool, bool, u16)>(),
            (name(), o(), prop::option::of(policy())),
            name(),
            any::<u64>()
        )
            .prop_map(
                |(
                    path,
                    (overwrite, create_parents, permission),
                    (owner, group, policy),
                    holder,
                    block_size,
                )| {
                    Op::Create {
                        path,
                        overwrite,
                        create_parents,
                        permission,
                        owner,
                        group,
                        policy,
                        holder,
                        block_size,
                    }
                }
            ),
        (ns_path(), name(), any::<u64>()).prop_map(|(path, holder, length)| Op::Complete {
            path,
            holder,
            length
        }),
        (ns_path(), name()).prop_map(|(path, holder)| Op::Append { path, holder }),
        (ns_path(), ns_path(), any::<bool>()).prop_map(|(src, dst, overwrite)| Op::Rename {
            src,
            dst,
            overwrite
        }),
        (ns_path(), any::<bool>()).prop_map(|(path, recursive)| Op::Delete { path, recursive }),
        (ns_path(), any::<u16>())
            .prop_map(|(path, permission)| Op::SetPermission { path, permission }),
        (ns_path(), o(), o()).prop_map(|(path, owner, group)| Op::SetOwner { path, owner, group }),
        (ns_path(), any::<(Option<u64>, Option<u64>)>()).prop_map(
            |(path, (mtime_ms, atime_ms))| {
                Op::SetTimes {
                    path,
                    mtime_ms,
                    atime_ms,
                }
            }
        ),
        (ns_path(), policy()).prop_map(|(path, policy)| Op::SetStoragePolicy { path, policy }),
        name().prop_map(|holder| Op::RenewLease { holder }),
        (ns_path(), any::<Option<(u64, u64)>>()).prop_map(|(path, last_group_length)| {
            Op::RecoverLease {
                path,
                last_group_length: last_group_length.map(|(l, g)| (l, GroupId(g))),
            }
        }),
        (ns_path(), "\\PC{0,30}", any::<bool>(), name()).prop_map(
            |(path, target, create_parents, owner)| Op::Symlink {
                path,
                target,
                create_parents,
                owner
            }
        ),
        (
            ns_path(),
            name(),
            bytes(),
            prop_oneof![
                Just(XattrExpect::Any),
                Just(XattrExpect::Absent),
                bytes().prop_map(XattrExpect::Value)
            ]
        )
            .prop_map(|(path, name, value, expect)| Op::SetXattr {
                path,
                name,
                value,
                expect
            }),
        (ns_path(), name()).prop_map(|(path, name)| Op::RemoveXattr { path, name }),
        (ns_path(), name(), bytes()).prop_map(|(path, name, value)| Op::AppendXattr {
            path,
            name,
            value
        }),
        (
            ns_path(),
            name(),
            any::<u64>(),
            prop::collection::vec(any::<u64>().prop_map(BlockServerId), 0..16)
        )
            .prop_map(|(path, holder, file_length, targets)| Op::AddBlock {
                path,
                holder,
                file_length,
                targets
            }),
        (
            any::<Option<u64>>(),
            prop::collection::vec((name(), name(), any::<u64>()), 0..3),
            prop::collection::vec((name(), name()), 0..3),
            prop::collection::vec((name(), name(), any::<u64>()), 0..3)
        )
            .prop_map(
                |(node_bytes_per_sec, rack_pairs, racks, datacenter_pairs)| {
                    Op::SetThrottle(ThrottleChange {
                        node_bytes_per_sec,
                        rack_pairs,
                        racks,
                        datacenter_pairs,
                    })
                }
            ),
        any::<u64>().prop_map(|budget| Op::Reclaim { budget }),
        (ns_path(), any::<u64>(), ".{0,40}", any::<bool>()).prop_map(
            |(path, inode, holder, force)| Op::BeginLeaseRecovery {
                path,
                inode: raftfs_core::id::InodeId(inode),
                holder,
                force,
            }
        ),
        (any::<u32>(), any::<[u8; 32]>(), any::<u64>(), any::<u64>()).prop_map(
            |(id, secret, created_ms, expires_ms)| Op::RollBlockKey {
                key: raftfs_core::block_token::BlockKey {
                    id,
                    secret,
                    created_ms,
                    expires_ms,
                },
            }
        ),
        (ns_path(), "[a-z][a-z0-9-]{0,31}", ns_path()).prop_map(|(at, name, path)| {
            Op::MountAdd {
                at,
                to: raftfs_core::federation::Destination {
                    nameservice: raftfs_core::federation::NameserviceId::parse(&name)
                        .expect("the pattern is a name"),
                    path,
                },
            }
        }),
        ns_path().prop_map(|at| Op::MountRemove { at }),
        (ns_path(), any::<bool>()).prop_map(|(path, frozen)| Op::Freeze { path, frozen }),
        (0u8..3, 1u16..4).prop_map(|(kind, to)| {
            use raftfs_core::namespace::upgrade::UpgradeStep;
            Op::Upgrade(match kind {
                0 => UpgradeStep::Prepare,
                1 => UpgradeStep::Finalize {
                    to: raftfs_core::level::Level(to),
                },
                _ => UpgradeStep::Rollback,
            })
        }),
        (1u64..100, 0u8..3, any::<u64>()).prop_map(|(server, kind, for_ms)| {
            use raftfs_core::namespace::admin_state::AdminChange;
            Op::SetAdminState {
                server: raftfs_core::id::BlockServerId(server),
                change: match kind {
                    0 => AdminChange::Decommission,
                    1 => AdminChange::Maintenance { for_ms },
                    _ => AdminChange::InService,
                },
            }
        }),
        (ns_path(), ns_path(), ns_path()).prop_map(|(at, from, to)| Op::MountMove {
            at,
            from: raftfs_core::federation::Destination {
                nameservice: raftfs_core::federation::NameserviceId::parse("ns1").expect("a name"),
                path: from,
            },
            to: raftfs_core::federation::Destination {
                nameservice: raftfs_core::federation::NameserviceId::parse("ns2").expect("a name"),
                path: to,
            },
        }),
        ns_path().prop_map(|path| Op::AllowSnapshot { path }),
        ns_path().prop_map(|path| Op::DisallowSnapshot { path }),
        (ns_path(), proptest::option::of(name()))
            .prop_map(|(path, name)| Op::CreateSnapshot { path, name }),
        (ns_path(), name()).prop_map(|(path, name)| Op::DeleteSnapshot { path, name }),
        (ns_path(), name(), name()).prop_map(|(path, from, to)| Op::RenameSnapshot {
            path,
            from,
            to
        }),
        proptest::option::of("[a-z][a-z0-9-]{0,31}").prop_map(|name| {
            Op::SetDefaultNameservice {
                nameservice: name.map(|n| {
                    raftfs_core::federation::NameserviceId::parse(&n)
                        .expect("the pattern is a name")
                }),
            }
        }),
    ]
}

prop_compose! {
    fn proposal()(
        client in any::<[u8; 16]>(),
        call_id in any::<u64>(),
        op in op(),
        access in prop::option::of((name(), prop::collection::vec(name(), 0..3), any::<bool>())),
    ) -> Proposal {
        let access = access.map(|(user, groups, superuser)| Access {
            user,
            groups,
            superuser,
            machine: String::new(),
        });
        Proposal { client: ClientId(client), call_id: CallId(call_id), op, access }
    }
}

prop_compose! {
    fn any_batch()(ctx in any::<(u64, u64)>(), proposals in prop::collection::vec(proposal(), 0..8)) -> Batch {
        Batch { ctx: ApplyCtx { now_ms: ctx.0, lease_ms: ctx.1 }, proposals }
    }
}

fn output() -> impl Strategy<Value = OpOutput> {
    prop_oneof![
        inode().prop_map(OpOutput::Inode),
        any::<u64>().prop_map(OpOutput::Removed),
        Just(OpOutput::Done),
        (inode(), block_group()).prop_map(|(i, g)| OpOutput::Group(i, g)),
    ]
}

fn ns_error() -> impl Strategy<Value = NsError> {
    let s = || "\\PC{0,20}";
    prop_oneof![
        (s(), s()).prop_map(|(path, reason)| NsError::InvalidPath { path, reason }),
        s().prop_map(NsError::NotFound),
        s().prop_map(NsError::AlreadyExists),
        s().prop_map(NsError::NotADirectory),
        s().prop_map(NsError::IsADirectory),
        s().prop_map(NsError::DirectoryNotEmpty),
        s().prop_map(NsError::ParentNotFound),
        (s(), s()).prop_map(|(path, holder)| NsError::LeaseConflict { path, holder }),
        (s(), s()).prop_map(|(src, dst)| NsError::RenameIntoSubtree { src, dst }),
        s().prop_map(NsError::RootNotAllowed),
        s().prop_map(NsError::NotUnderConstruction),
        s().prop_map(NsError::InvalidArgument),
        (s(), s()).prop_map(|(path, name)| NsError::XattrNotFound { path, name }),
        (s(), s()).prop_map(|(path, name)| NsError::XattrMismatch { path, name }),
        (any::<u64>(), s()).prop_map(|(call_id, op)| NsError::RetryMismatch { call_id, op }),
        (s(), s(), s()).prop_map(|(user, what, path)| NsError::PermissionDenied {
            user,
            what,
            path
        }),
        s().prop_map(NsError::Snapshot),
        (s(), s()).prop_map(|(path, frozen)| NsError::ReadOnly { path, frozen }),
    ]
}

fn any_log_id() -> impl Strategy<Value = LogId<MemberId>> {
    any::<(u64, u64, u64)>().prop_map(|(t, n, i)| log_id(t, n, i))
}

fn entry() -> impl Strategy<Value = Entry<TypeConfig>> {
    let payload = prop_oneof![
        Just(EntryPayload::Blank),
        any_batch().prop_map(EntryPayload::Normal),
        (
            prop::collection::btree_set((1u64..8).prop_map(MemberId), 1..4),
            prop::collection::btree_map(1u64..12, name(), 0..4)
        )
            .prop_map(|(voters, nodes)| {
                let nodes: BTreeMap<MemberId, BasicNode> = nodes
                    .into_iter()
                    .map(|(id, a)| (MemberId(id), BasicNode::new(a)))
                    .collect();
                EntryPayload::Membership(Membership::new(vec![voters], nodes))
            }),
    ];
    (any_log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
}

fn round_trips<S: Schema>(value: &S::Value) -> Result<(), TestCaseError>
where
    S::Value: PartialEq + Debug,
{
    let bytes = format::encode::<S>(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let decoded = format::decode::<S>(&bytes);
    prop_assert_eq!(decoded.as_ref(), Ok(value));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn batches_round_trip(batch in any_batch()) {
        round_trips::<Batch>(&batch)?;
    }

    /// The proposer keeps entries within their byte bound by adding up `Op::size_bound`
    /// without encoding: it must never be below the real encoding.
    #[test]
    fn an_operation_never_encodes_larger_than_its_size_bound(op in op()) {
        let encoded = postcard::to_allocvec(&op).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(encoded.len() <= op.size_bound(), "{} > {}", encoded.len(), op.size_bound());
    }

    #[test]
    fn retry_results_round_trip(result in prop_oneof![output().prop_map(Ok), ns_error().prop_map(Err)]) {
        round_trips::<RetryResult>(&unchecked(result.clone()))?;
        round_trips::<RetryResult>(&RetryRecord { fingerprint: Some([7; 32]), result })?;
    }

    #[test]
    fn log_records_round_trip(
        entry in entry(),
        vote in (any::<u64>(), any::<u64>(), any::<bool>()),
        id in prop::option::of(any_log_id()),
    ) {
        round_trips::<LogEntry>(&entry)?;
        let vote = if vote.2 { Vote::new_committed(vote.0, MemberId(vote.1)) } else { Vote::new(vote.0, MemberId(vote.1)) };
        round_trips::<VoteRecord>(&vote)?;
        round_trips::<CommittedRecord>(&id)?;
        round_trips::<AppliedRecord>(&id)?;
        if let Some(id) = id {
            round_trips::<PurgedRecord>(&id)?;
        }
    }

    #[test]
    fn append_entries_round_trip(
        entries in prop::collection::vec(entry(), 0..4),
        prev in prop::option::of(any_log_id()),
        commit in prop::option::of(any_log_id()),
    ) {
        let request = AppendEntriesRequest::<TypeConfig> {
            vote: vote(),
            prev_log_id: prev,
            entries,
            leader_commit: commit,
        };
        let bytes = format::encode::<rpc::AppendEntries>(&request)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let decoded = format::decode::<rpc::AppendEntries>(&bytes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(same_append_entries(&decoded, &request));
    }

    /// Damaged entries (a byte changed, or cut short) decode to something or fail with a
    /// typed error; they never panic, and a cut one always fails.
    #[test]
    fn damaged_entries_fail_typed(entry in entry(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = format::encode::<LogEntry>(&entry)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = format::decode::<LogEntry>(&bytes);
        let _ = format::decode::<rpc::AppendEntries>(&bytes);
        bytes.truncate(i);
        prop_assert!(format::decode::<LogEntry>(&bytes).is_err());
    }
}
