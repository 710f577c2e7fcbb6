//! Binary, order-preserving keys. Integers are big-endian so that byte order is numeric
//! order; a directory's entries share the parent's id as a prefix and sort by name.

use super::blocks::GroupId;
use super::inode::InodeId;

pub fn inode(id: InodeId) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

pub fn dentry_prefix(parent: InodeId) -> Vec<u8> {
    parent.to_be_bytes().to_vec()
}

pub fn dentry(parent: InodeId, name: &str) -> Vec<u8> {
    let mut k = dentry_prefix(parent);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The name part of a dentry key.
pub fn dentry_name(key: &[u8]) -> Option<&str> {
    key.get(8..).and_then(|n| std::str::from_utf8(n).ok())
}

pub fn xattr_prefix(id: InodeId) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

pub fn xattr(id: InodeId, name: &str) -> Vec<u8> {
    let mut k = xattr_prefix(id);
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn lease(holder: &str) -> Vec<u8> {
    holder.as_bytes().to_vec()
}

/// Holders never contain NUL (validated), so `holder ++ 0` is an unambiguous prefix.
pub fn lease_files_prefix(holder: &str) -> Vec<u8> {
    let mut k = holder.as_bytes().to_vec();
    k.push(0);
    k
}

pub fn lease_file(holder: &str, id: InodeId) -> Vec<u8> {
    let mut k = lease_files_prefix(holder);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub fn group(id: GroupId) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// A file's groups sort by position under the file's id.
pub fn file_block(inode: InodeId, index: u32) -> Vec<u8> {
    let mut k = inode.to_be_bytes().to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Decodes a big-endian u64 value.
pub fn u64_value(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Keys of the `meta` column family.
pub mod meta {
    /// The next inode id to hand out.
    pub const NEXT_INODE: &[u8] = b"next_inode";
    /// The next block group id to hand out.
    pub const NEXT_GROUP: &[u8] = b"next_group";

    /// The next snapshot id to hand out (DESIGN §13).
    pub const NEXT_SNAPSHOT: &[u8] = b"next_snapshot";

    /// Prefix of the generation keys (see [`generation`]).
    pub const GENERATION_PREFIX: &[u8] = b"generation/";

    /// The generation of block group `id`, when lease recovery moved it past the first
    /// (8 big-endian bytes; a group without one is at `Generation::FIRST`). Kept beside the
    /// group's record rather than in it: the `block_groups` record stays at version 1, and
    /// only the few groups a recovery closed carry a key.
    pub fn generation(id: crate::id::GroupId) -> Vec<u8> {
        let mut k = GENERATION_PREFIX.to_vec();
        k.extend_from_slice(&id.to_be_bytes());
        k
    }
}
