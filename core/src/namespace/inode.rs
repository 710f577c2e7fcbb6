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
    const CURRENT: u16 = 1;

    fn decode_body(version: u16, bytes: &[u8]) -> Result<Self, FormatError> {
        match version {
            1 => format::body(Self::RECORD, bytes),
            v => Err(format::unknown_version::<Self>(v)),
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

/// Encodes an inode as record version `version` (the cluster's format level says which).
/// The state machine refuses a level this binary does not write before it applies anything
/// (`Level::supported`), so every version asked for here is one it writes.
pub fn encode_at(inode: &Inode, version: u16) -> Vec<u8> {
    match format::encode_as::<Inode>(inode, version) {
        Ok(v) => v,
        Err(e) => panic!("encoding an inode failed: {e}"),
    }
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
                    newest: 1
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
