//! The namespace's record formats (`raftfs_core::format`, families in `namespace::inode`):
//! golden fixtures of every family at every version, refusal of newer versions and of
//! truncated records, and round trips of generated values.
//!
//! The fixtures in `tests/golden/` are records as released binaries wrote them: never
//! regenerate or edit one. `RAFTFS_WRITE_GOLDEN=1 cargo test -p raftfs-core --test formats`
//! writes the fixtures that do not exist yet (a new family or version) and leaves the others.

use raftfs_core::id::{BlockServerId, Generation, GroupId, InodeId};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use proptest::prelude::*;
use raftfs_core::arbitrary::{block_group, inode, throttle_settings};
use raftfs_core::block_token::{
    BlockKey, BlockToken, Claims, DEFAULT_POOL, Holder, Indices, KeyRing, Mode, SignedAs,
    TokenError, Want, check,
};
use raftfs_core::format::{self, FormatError, Schema};
use raftfs_core::identity::{Caller, PortPolicy, Principal, Proof, User};
use raftfs_core::namespace::block_keys::BlockKeys;
use raftfs_core::namespace::blocks::BlockGroup;
use raftfs_core::namespace::inode::{Inode, InodeKind, LeaseRecord, UnderConstruction};
use raftfs_core::namespace::throttle::ThrottleSettings;
use raftfs_core::{EcCodec, StoragePolicy};

/// Checks `value` against the fixture `golden/<name>.bin`, a record of family `S` at
/// `version`: the fixture decodes to `value`, and (at the current version) `value` encodes
/// to the fixture. Also: the same record with a newer version is refused as unknown, and
/// every truncation of it as corrupt.
fn golden<S: Schema>(name: &str, version: u16, value: &S::Value)
where
    S::Value: PartialEq + Debug,
{
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.bin"));
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
    assert_eq!(
        format::decode::<S>(&golden).as_ref(),
        Ok(value),
        "{name}: the fixture no longer decodes to its value"
    );
    if version == S::CURRENT {
        assert_eq!(
            format::encode::<S>(value).expect("encode"),
            golden,
            "{name}: the encoding changed; a format change needs a new version (core/src/format.rs)"
        );
    }
    let mut newer = golden.clone();
    newer[0] = u8::try_from(S::CURRENT + 1).expect("versions below 127 are one byte");
    assert_eq!(
        format::decode::<S>(&newer),
        Err(FormatError::UnknownVersion {
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
}

fn directory() -> Inode {
    Inode {
        id: InodeId(16_385),
        parent: InodeId(1),
        name: "dir".into(),
        permission: 0o1777,
        owner: "alice".into(),
        group: "staff".into(),
        mtime_ms: 1_767_225_600_000,
        atime_ms: 1_767_225_600_001,
        children: 3,
        ..Inode::root()
    }
}

fn file() -> Inode {
    Inode {
        id: InodeId(16_386),
        parent: InodeId(16_385),
        name: "f.bin".into(),
        kind: InodeKind::File,
        permission: 0o644,
        policy: StoragePolicy::ErasureCoded {
            codec: EcCodec::Rs,
            data: 6,
            parity: 3,
            cell_kib: 1024,
        },
        length: 3 << 30,
        under_construction: Some(UnderConstruction {
            holder: "raftfs-client-00112233445566778899aabbccddeeff".into(),
            client_machine: String::new(),
        }),
        block_size: 128 << 20,
        block_groups: 2,
        ..directory()
    }
}

fn symlink() -> Inode {
    Inode {
        id: InodeId(16_387),
        name: "link".into(),
        kind: InodeKind::Symlink,
        permission: 0o777,
        policy: StoragePolicy::Replicated(2),
        symlink_target: Some("/dir/f.bin".into()),
        children: 0,
        ..directory()
    }
}

fn open_group() -> BlockGroup {
    BlockGroup {
        id: GroupId(1 << 20),
        inode: InodeId(16_386),
        index: 1,
        offset: 6 * (128 << 20),
        length: None,
        targets: [3, 1, 4, 15, 9, 2, 6, 5, 35].map(BlockServerId).to_vec(),
    }
}

fn closed_group() -> BlockGroup {
    BlockGroup {
        id: GroupId((1 << 20) + 1),
        index: 0,
        offset: 0,
        length: Some(6 * (128 << 20)),
        targets: [7, 8, 9].map(BlockServerId).to_vec(),
        ..open_group()
    }
}

fn throttle() -> ThrottleSettings {
    ThrottleSettings {
        node_bytes_per_sec: 100 << 20,
        rack_pairs: BTreeMap::from([
            (("r1".into(), "r2".into()), 10 << 20),
            (("r2".into(), "r1".into()), 20 << 20),
        ]),
        racks: BTreeMap::from([("r1".into(), "dc1".into()), ("r2".into(), "dc2".into())]),
        datacenter_pairs: BTreeMap::from([(("dc1".into(), "dc2".into()), 1 << 30)]),
    }
}

fn block_key(id: u32) -> BlockKey {
    BlockKey {
        id,
        secret: core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(id as u8)),
        created_ms: 1_767_225_600_000,
        expires_ms: 1_767_225_600_000 + 11 * 3_600_000,
    }
}

fn token_claims(generation: Generation) -> Claims {
    Claims {
        pool: 0,
        group: GroupId(1 << 20),
        indices: Indices::of([0, 3, 8]),
        modes: 3,
        expires_ms: 1_767_225_600_000 + 3_600_000,
        holder: Holder::User("alice".into()),
        port: PortPolicy::Tls,
        generation,
        servers: if generation == Generation::FIRST {
            Vec::new()
        } else {
            vec![BlockServerId(4), BlockServerId(9)]
        },
    }
}

/// The block keys journaled in `meta`, and a token as blockservers receive it on the wire
/// (signed by key 2: a token is a record of its own so that its claims can change). A token
/// of version 1 (before generation stamps) decodes to the generation every group had then,
/// and keeps its signature over the bytes version 1 signed.
#[test]
fn golden_block_key_records_v1() {
    golden::<BlockKeys>(
        "block-keys-v1",
        1,
        &BlockKeys(vec![block_key(1), block_key(2)]),
    );
    let v1 = BlockToken {
        key_id: 2,
        claims: token_claims(Generation::FIRST),
        // The MAC version 1 computed over its claims' encoding (the fixture's last 32 bytes).
        mac: [
            0x56, 0x6f, 0x24, 0xc7, 0xe4, 0xd4, 0xad, 0x17, 0xd7, 0xb8, 0x3e, 0xd1, 0x92, 0x74,
            0x01, 0x08, 0x2c, 0x14, 0xc4, 0x64, 0x65, 0xae, 0x67, 0x0b, 0x59, 0x3f, 0x2d, 0xcb,
            0x64, 0xfe, 0xc6, 0x71,
        ],
        signed_as: SignedAs::V1,
    };
    golden::<BlockToken>("block-token-v1", 1, &v1);
}

/// Version 2 of the token: the claims name the group's generation. A version 1 token still
/// checks against the key that signed it; changing its claims breaks it.
#[test]
fn golden_block_token_v2() {
    let token = BlockToken::mint(&block_key(2), token_claims(Generation(3)));
    golden::<BlockToken>("block-token-v2", 2, &token);

    let ring = KeyRing::from_keys([block_key(2)]);
    let alice = Caller {
        principal: Principal::User(User {
            name: "alice".into(),
            groups: vec![],
        }),
        proof: Proof::Certificate,
        port: PortPolicy::Tls,
    };
    let want = Want {
        pool: DEFAULT_POOL,
        group: GroupId(1 << 20),
        indices: Indices::one(3),
        mode: Mode::Write,
        server: BlockServerId(9),
    };
    let now = 1_767_225_600_000 + 1_000;
    let v1 = golden_bytes("block-token-v1");
    let claims = check(&ring, &v1, &want, &alice, false, now).expect("a v1 token still checks");
    assert_eq!(claims.generation, Generation::FIRST);
    let v2 = golden_bytes("block-token-v2");
    let claims = check(&ring, &v2, &want, &alice, false, now).expect("a v2 token checks");
    assert_eq!(claims.generation, Generation(3));
    // A v1 token upgraded and re-encoded as v2 (its generation raised) is no token.
    let mut forged = format::decode::<BlockToken>(&v1).expect("decode");
    forged.claims.generation = Generation(9);
    forged.signed_as = SignedAs::Current;
    assert_eq!(
        check(&ring, &forged.encode(), &want, &alice, false, now),
        Err(TokenError::BadSignature)
    );
}

fn golden_bytes(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn golden_namespace_records_v1() {
    golden::<Inode>("inode-root-v1", 1, &Inode::root());
    golden::<Inode>("inode-directory-v1", 1, &directory());
    golden::<Inode>("inode-file-v1", 1, &file());
    golden::<Inode>("inode-symlink-v1", 1, &symlink());
    golden::<LeaseRecord>(
        "lease-record-v1",
        1,
        &LeaseRecord {
            expiry_ms: 1_767_225_660_000,
            files: 2,
        },
    );
    golden::<BlockGroup>("block-group-open-v1", 1, &open_group());
    golden::<BlockGroup>("block-group-closed-v1", 1, &closed_group());
    golden::<ThrottleSettings>("throttle-settings-v1", 1, &throttle());
    golden::<ThrottleSettings>(
        "throttle-settings-default-v1",
        1,
        &ThrottleSettings::default(),
    );
}

/// The namespace records from before the envelope (`[1] ++ postcard`) are its version 1.
#[test]
fn records_written_before_the_envelope_are_version_1() {
    let mut old = vec![1u8];
    // The layout of then is version 1's (inode version 2 added the writer's machine).
    let inode = file();
    let v1 = raftfs_core::namespace::inode::v1::InodeRef::try_from(&inode).expect("v1");
    old.extend(postcard::to_stdvec(&v1).expect("postcard"));
    assert_eq!(format::decode::<Inode>(&old), Ok(file()));
}

// ---------------------------------------------------------------- generated values

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
    fn inodes_round_trip(value in inode()) {
        round_trips::<Inode>(&value)?;
    }

    #[test]
    fn block_groups_round_trip(value in block_group()) {
        round_trips::<BlockGroup>(&value)?;
    }

    #[test]
    fn lease_records_round_trip(expiry_ms in any::<u64>(), files in any::<u64>()) {
        round_trips::<LeaseRecord>(&LeaseRecord { expiry_ms, files })?;
    }

    #[test]
    fn throttle_settings_round_trip(value in throttle_settings()) {
        round_trips::<ThrottleSettings>(&value)?;
    }

    /// Garbage is refused, never a panic: an inode record cut anywhere or with a byte
    /// changed either decodes to some inode or fails with a typed error.
    #[test]
    fn damaged_inodes_fail_typed(value in inode(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = format::encode::<Inode>(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = format::decode::<Inode>(&bytes);
        bytes.truncate(i);
        prop_assert!(format::decode::<Inode>(&bytes).is_err());
    }
}

/// The federation's mount table journaled in `meta` (DESIGN §10).
#[test]
fn golden_mount_table_v1() {
    use raftfs_core::federation::{Destination, MountTable, NameserviceId};
    use raftfs_core::namespace::NsPath;
    use raftfs_core::namespace::mounts::MountRecord;
    let ns = |n: &str| NameserviceId::parse(n).expect("name");
    let path = |p: &str| NsPath::parse(p).expect("path");
    let mut table = MountTable::new(Some(ns("ns0")));
    table
        .add(
            path("/user"),
            Destination {
                nameservice: ns("ns1"),
                path: path("/user"),
            },
        )
        .expect("add");
    table
        .add(
            path("/logs"),
            Destination {
                nameservice: ns("ns2"),
                path: path("/"),
            },
        )
        .expect("add");
    golden::<MountRecord>("mount-table-v1", 1, &MountRecord(table));
}

/// The paths `balance` froze, journaled in `meta` (DESIGN §13).
#[test]
fn golden_frozen_paths_v1() {
    use raftfs_core::namespace::NsPath;
    use raftfs_core::namespace::freeze::FrozenRecord;
    let path = |p: &str| NsPath::parse(p).expect("path");
    let record = FrozenRecord(
        [(path("/data"), 1_767_225_600_000), (path("/logs/x"), 7)]
            .into_iter()
            .collect(),
    );
    golden::<FrozenRecord>("frozen-paths-v1", 1, &record);
}

/// The blockservers out of service, journaled in `meta` (DESIGN §11).
#[test]
fn golden_blockserver_admin_states_v1() {
    use raftfs_core::id::BlockServerId;
    use raftfs_core::namespace::admin_state::{AdminRecord, AdminState};
    let record = AdminRecord(
        [
            (
                BlockServerId(3),
                AdminState::Decommissioning {
                    since_ms: 1_767_225_600_000,
                },
            ),
            (
                BlockServerId(12),
                AdminState::Maintenance {
                    until_ms: 1_767_232_800_000,
                },
            ),
        ]
        .into_iter()
        .collect(),
    );
    golden::<AdminRecord>("blockserver-admin-states-v1", 1, &record);
}

/// The cluster's format level and a prepared upgrade, journaled in `meta` (DESIGN §11).
#[test]
fn golden_upgrade_state_v1() {
    use raftfs_core::level::Level;
    use raftfs_core::namespace::upgrade::UpgradeState;
    golden::<UpgradeState>(
        "upgrade-state-prepared-v1",
        1,
        &UpgradeState {
            level: Level(1),
            prepared_ms: Some(1_767_225_600_000),
        },
    );
    golden::<UpgradeState>(
        "upgrade-state-finalized-v1",
        1,
        &UpgradeState {
            level: Level(2),
            prepared_ms: None,
        },
    );
}

/// Inode version 2 (the `next-format` build): a file under construction with its writer's
/// machine, recorded from format level 2 on (DESIGN §11).
#[cfg(feature = "next-format")]
#[test]
fn golden_inode_with_a_writers_machine_v2() {
    use raftfs_core::namespace::inode::UnderConstruction;
    let inode = Inode {
        under_construction: Some(UnderConstruction {
            holder: "raftfs-client-00112233445566778899aabbccddeeff".into(),
            client_machine: "10.1.2.3".into(),
        }),
        ..file()
    };
    golden::<Inode>("inode-file-writer-machine-v2", 2, &inode);
}
