//! The records the namespace stores: inodes, storage policies, leases, and their record
//! families in the versioned envelope of [`crate::format`] (a version, then postcard), so
//! that a newer binary reads an older record and an older binary refuses a newer one.

use serde::{Deserialize, Serialize};

use super::blocks::BlockGroup;
use super::error::StoreError;
use super::throttle::ThrottleSettings;
use crate::format::{self, FormatError, Schema};

pub use crate::id::InodeId;

/// The root directory's inode number.
pub const ROOT_ID: InodeId = InodeId(1);
/// The first number handed to a new inode.
pub const FIRST_ALLOCATED_ID: InodeId = InodeId(16_385);

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InodeKind {
    Directory,
    File,
    Symlink,
}

pub use crate::policy::{EC_POLICIES, EcCodec, StoragePolicy};

/// The writer that holds a file under construction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnderConstruction {
    /// Lease holder (the writing client's name).
    pub holder: String,
    /// The writer's machine (HDFS's `clientMachine`), from the operation that opened the
    /// file; recorded from format level 2 on, empty before (inode version 2).
    pub client_machine: String,
}

/// One file, directory or symlink. Stored in the `inodes` column family under its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    pub id: InodeId,
    pub parent: InodeId,
    pub name: String,
    pub kind: InodeKind,
    /// POSIX permission bits (<= 0o7777).
    pub permission: u16,
    pub owner: String,
    pub group: String,
    /// Milliseconds since the epoch, fixed by the leader in the entry that set them.
    pub mtime_ms: u64,
    pub atime_ms: u64,
    pub policy: StoragePolicy,
    /// Bytes (files).
    pub length: u64,
    /// Set while a writer holds the file.
    pub under_construction: Option<UnderConstruction>,
    /// Target of a symlink.
    pub symlink_target: Option<String>,
    /// Direct children (directories), kept so that `stat` and "is it empty" need no scan.
    pub children: u64,
    /// Bytes per internal block (files; 0 for directories and symlinks), fixed at create.
    pub block_size: u64,
    /// Block groups of the file (`namespace::blocks`).
    pub block_groups: u32,
}

impl Inode {
    /// The root directory as it is before anything changes it.
    pub fn root() -> Self {
        Inode {
            id: ROOT_ID,
            parent: ROOT_ID,
            name: String::new(),
            kind: InodeKind::Directory,
            permission: 0o755,
            owner: "root".into(),
            group: "supergroup".into(),
            mtime_ms: 0,
            atime_ms: 0,
            policy: StoragePolicy::default(),
            length: 0,
            under_construction: None,
            symlink_target: None,
            children: 0,
            block_size: 0,
            block_groups: 0,
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == InodeKind::Directory
    }
}

/// A lease holder's record: when its leases run out unless renewed, and how many files it
/// writes. The count (HDFS's `Lease` keeps the set in memory) answers "is this holder idle?"
/// with one read: a prefix scan of the holder's `lease_files` keys would first step over the
/// delete tombstones of every file it closed since the last compaction, which made closing a
/// writer's n-th file cost O(n) (a bulk close quadratic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub expiry_ms: u64,
    /// The holder's files under construction (its keys in `lease_files`).
    pub files: u64,
}

// ---------------------------------------------------------------- formats
//
// The namespace's record families (`crate::format`: envelope, versions, how to add one).
// Each family's version covers every type its body reaches:
//
// | family (`RECORD`)    | where                            | body reaches                        |
// |----------------------|----------------------------------|-------------------------------------|
// | `inode`              | `inodes`                         | Inode, InodeKind, StoragePolicy (EcCodec), UnderConstruction |
// | `lease record`       | `leases`                         | LeaseRecord                         |
// | `block group`        | `block_groups`                   | BlockGroup                          |
// | `throttle settings`  | `meta` `reconstruction_throttle` | ThrottleSettings                    |
// | `block keys`         | `meta` `block_keys`              | BlockKeys, BlockKey (block_keys.rs) |
// | `mount table`        | `meta` `mount_table`             | MountRecord (mounts.rs), MountTable, Destination, NameserviceId, NsPath (federation.rs) |
// | `frozen paths`       | `meta` `frozen`                  | FrozenRecord (freeze.rs), NsPath    |
//
// Every family is at version 1: the layout of `[1] ++ postcard` these records had before the
// envelope existed. The retry cache's results (`retry`) are the metaserver's family
// (`journal::format`), and reach `OpOutput` (so `Inode` and `BlockGroup`) and `NsError`:
// a change to `Inode` is a new version of `inode` and of the retry results.

impl Schema for Inode {
    type Value = Self;
    const RECORD: &'static str = "inode";
    /// Version 2 (the writer's machine) is written from format level 2 on, which only the
    /// `next-format` build reaches; without it this binary is the "old version" of the
    /// upgrade tests, which reads and writes version 1 only.
    const CURRENT: u16 = if cfg!(feature = "next-format") { 2 } else { 1 };

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body::<v1::Inode>(Self::RECORD, bytes).map(Inode::from),
            2 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }

    /// Version 1 unless the inode records a writer's machine (set from format level 2 on).
    fn version_for(inode: &Self) -> u16 {
        match &inode.under_construction {
            Some(uc) if !uc.client_machine.is_empty() => 2,
            _ => 1,
        }
    }

    fn encode_body(inode: &Self, version: u16, out: Vec<u8>) -> Result<Vec<u8>, FormatError> {
        let unwritable = |reason: String| FormatError::Unwritable {
            record: Self::RECORD,
            version,
            reason,
        };
        match version {
            1 => postcard::to_extend(&v1::InodeRef::try_from(inode).map_err(unwritable)?, out)
                .map_err(|e| unwritable(e.to_string())),
            2 if version <= Self::CURRENT => {
                postcard::to_extend(inode, out).map_err(|e| unwritable(e.to_string()))
            }
            _ => Err(unwritable(format!(
                "this binary writes versions up to {}",
                Self::CURRENT
            ))),
        }
    }
}

/// Version 1 of an inode, frozen: without the writer's machine. Decoded into the current
/// type (an empty machine); written from a borrowed view, so that writing the old version
/// (every write before an upgrade is finalized) copies nothing.
pub mod v1 {
    use serde::{Deserialize, Serialize};

    use super::{InodeId, InodeKind, StoragePolicy};

    #[derive(Debug, Deserialize)]
    pub struct UnderConstruction {
        pub holder: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Inode {
        pub id: InodeId,
        pub parent: InodeId,
        pub name: String,
        pub kind: InodeKind,
        pub permission: u16,
        pub owner: String,
        pub group: String,
        pub mtime_ms: u64,
        pub atime_ms: u64,
        pub policy: StoragePolicy,
        pub length: u64,
        pub under_construction: Option<UnderConstruction>,
        pub symlink_target: Option<String>,
        pub children: u64,
        pub block_size: u64,
        pub block_groups: u32,
    }

    #[derive(Debug, Serialize)]
    pub struct UnderConstructionRef<'a> {
        pub holder: &'a str,
    }

    /// [`Inode`]'s layout over a current inode's fields.
    #[derive(Debug, Serialize)]
    pub struct InodeRef<'a> {
        pub id: InodeId,
        pub parent: InodeId,
        pub name: &'a str,
        pub kind: InodeKind,
        pub permission: u16,
        pub owner: &'a str,
        pub group: &'a str,
        pub mtime_ms: u64,
        pub atime_ms: u64,
        pub policy: &'a StoragePolicy,
        pub length: u64,
        pub under_construction: Option<UnderConstructionRef<'a>>,
        pub symlink_target: Option<&'a str>,
        pub children: u64,
        pub block_size: u64,
        pub block_groups: u32,
    }

    impl<'a> TryFrom<&'a super::Inode> for InodeRef<'a> {
        type Error = String;

        /// Refuses an inode that version 1 cannot hold (a writer's machine).
        fn try_from(i: &'a super::Inode) -> Result<Self, String> {
            let under_construction = match &i.under_construction {
                Some(uc) if !uc.client_machine.is_empty() => {
                    return Err("version 1 has no writer's machine".into());
                }
                Some(uc) => Some(UnderConstructionRef { holder: &uc.holder }),
                None => None,
            };
            Ok(InodeRef {
                id: i.id,
                parent: i.parent,
                name: &i.name,
                kind: i.kind,
                permission: i.permission,
                owner: &i.owner,
                group: &i.group,
                mtime_ms: i.mtime_ms,
                atime_ms: i.atime_ms,
                policy: &i.policy,
                length: i.length,
                under_construction,
                symlink_target: i.symlink_target.as_deref(),
                children: i.children,
                block_size: i.block_size,
                block_groups: i.block_groups,
            })
        }
    }

    impl From<Inode> for super::Inode {
        fn from(i: Inode) -> Self {
            super::Inode {
                id: i.id,
                parent: i.parent,
                name: i.name,
                kind: i.kind,
                permission: i.permission,
                owner: i.owner,
                group: i.group,
                mtime_ms: i.mtime_ms,
                atime_ms: i.atime_ms,
                policy: i.policy,
                length: i.length,
                under_construction: i.under_construction.map(|uc| super::UnderConstruction {
                    holder: uc.holder,
                    client_machine: String::new(),
                }),
                symlink_target: i.symlink_target,
                children: i.children,
                block_size: i.block_size,
                block_groups: i.block_groups,
            }
        }
    }
}

impl Schema for LeaseRecord {
    type Value = Self;
    const RECORD: &'static str = "lease record";
    const CURRENT: u16 = 1;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }
}

impl Schema for BlockGroup {
    type Value = Self;
    const RECORD: &'static str = "block group";
    const CURRENT: u16 = 1;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }
}

impl Schema for ThrottleSettings {
    type Value = Self;
    const RECORD: &'static str = "throttle settings";
    const CURRENT: u16 = 1;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
        }
    }
}

/// Encodes a namespace record (of its family's current version).
pub fn encode<T: Schema<Value = T>>(value: &T) -> Vec<u8> {
    encode_record::<T>(value)
}

/// Decodes a namespace record read from column family `cf`.
pub fn decode<T: Schema<Value = T>>(cf: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    decode_record::<T>(cf, bytes)
}

/// Encodes a record of family `S` for the namespace's store.
pub fn encode_record<S: Schema>(value: &S::Value) -> Vec<u8> {
    // postcard into a `Vec` fails only for a sequence of unknown length or a failing
    // `Serialize` impl, and our records have neither: a failure is a bug in this binary, and
    // the write it belongs to must not be half made.
    match format::encode::<S>(value) {
        Ok(v) => v,
        Err(e) => panic!("encoding a namespace record failed: {e}"),
    }
}

/// Decodes a record of family `S` read from column family `cf`.
pub fn decode_record<S: Schema>(cf: &'static str, bytes: &[u8]) -> Result<S::Value, StoreError> {
    format::decode::<S>(bytes).map_err(|source| StoreError::Format { cf, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file opened from a known machine is version 2, which only the `next-format` build
    /// writes and reads; without a machine every build writes version 1.
    #[test]
    fn an_inode_with_a_writers_machine_needs_version_2() {
        let mut inode = Inode::root();
        inode.under_construction = Some(UnderConstruction {
            holder: "w".into(),
            client_machine: String::new(),
        });
        assert_eq!(encode(&inode)[0], 1);
        inode.under_construction = Some(UnderConstruction {
            holder: "w".into(),
            client_machine: "10.0.0.7".into(),
        });
        let v1 = format::encode_as::<Inode>(&inode, 1);
        assert!(matches!(
            v1,
            Err(FormatError::Unwritable { version: 1, .. })
        ));
        let v2 = format::encode::<Inode>(&inode);
        if cfg!(feature = "next-format") {
            let v2 = v2.expect("version 2");
            assert_eq!(v2[0], 2);
            assert_eq!(decode::<Inode>("inodes", &v2).expect("decodes"), inode);
        } else {
            assert!(matches!(
                v2,
                Err(FormatError::Unwritable { version: 2, .. })
            ));
        }
    }

    #[test]
    fn records_round_trip_and_reject_unknown_versions() {
        let inode = Inode::root();
        let bytes = encode(&inode);
        assert_eq!(
            bytes[0], 1,
            "version 1: the layout from before the envelope"
        );
        assert_eq!(decode::<Inode>("inodes", &bytes).expect("decodes"), inode);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(matches!(
            decode::<Inode>("inodes", &future),
            Err(StoreError::Format {
                cf: "inodes",
                source: FormatError::UnknownVersion {
                    record: "inode",
                    version: 9,
                    newest: Inode::CURRENT,
                }
            })
        ));
        assert!(matches!(
            decode::<Inode>("inodes", &[]),
            Err(StoreError::Format {
                source: FormatError::Corrupt { .. },
                ..
            })
        ));
    }
}
