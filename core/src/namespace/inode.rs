//! The records the namespace stores: inodes, storage policies, leases, and their binary
//! encoding (a format-version byte, then postcard), so that a newer binary can tell an older
//! record apart and read it.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::error::StoreError;

/// Inode number. Allocated from a counter in the replicated state, so that every replica
/// gives the same file the same number.
pub type InodeId = u64;

/// The root directory's inode number.
pub const ROOT_ID: InodeId = 1;
/// The first number handed to a new inode.
pub const FIRST_ALLOCATED_ID: InodeId = 16_385;

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

/// On-disk format version of every record below.
const FORMAT_V1: u8 = 1;

/// Encodes a record: a format byte, then postcard.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let out = vec![FORMAT_V1];
    // postcard cannot fail on our plain data types; an error would be a programming bug.
    match postcard::to_extend(value, out) {
        Ok(v) => v,
        Err(e) => panic!("postcard encode of a namespace record failed: {e}"),
    }
}

/// Decodes a record written by [`encode`].
pub fn decode<T: DeserializeOwned>(cf: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => postcard::from_bytes(body).map_err(|e| StoreError::Corrupt {
            cf,
            reason: e.to_string(),
        }),
        Some((v, _)) => Err(StoreError::Corrupt {
            cf,
            reason: format!("unknown format version {v}"),
        }),
        None => Err(StoreError::Corrupt {
            cf,
            reason: "empty record".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_unknown_versions() {
        let inode = Inode::root();
        let bytes = encode(&inode);
        assert_eq!(decode::<Inode>("inodes", &bytes).expect("decodes"), inode);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(decode::<Inode>("inodes", &future).is_err());
        assert!(decode::<Inode>("inodes", &[]).is_err());
    }
}
