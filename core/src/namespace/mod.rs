//! The namespace: pure logic over a key-value interface, no I/O of its own.
//!
//! - [`path`]: validated absolute paths.
//! - [`inode`]: the stored records (inodes, policies, leases) and their versioned encoding.
//! - [`kv`] / [`keys`]: the column families, order-preserving keys, a write overlay.
//! - [`blocks`]: the block groups of files and where the active placed them.
//! - [`throttle`]: reconstruction byte budgets, as journaled; [`block_keys`]: the keys block
//!   access tokens are signed with, as journaled.
//! - [`ops`]: mutations as journaled, with the leader-fixed context.
//! - [`reclaim`]: recursive deletes in bounded steps (detach, then reclaim).
//! - [`snapshot`]: read-only snapshots of directories, copy on first write, and their
//!   diffs.
//! - [`walk`]: a depth-first walk of a subtree in bounded memory, resumable (fsck's pages).
//! - [`permission`]: POSIX permissions checked as HDFS's checker does, for every mutation
//!   inside its apply ([`tree::apply_as`]) and for every read.
//! - [`tree`]: resolution and every read; [`tree::apply`] runs a mutation (written one
//!   function per operation in `exec/`, over the shared steps of `write.rs`).
//!
//! The journal's state machine runs [`tree::apply`] over RocksDB; unit tests run it over
//! [`kv::MemKv`]; the property test in `tests/namespace_model.rs` checks it against a plain
//! in-memory model.

pub mod admin_state;
pub mod block_keys;
pub mod blocks;
pub mod error;
mod exec;
pub mod freeze;
pub mod inode;
pub mod keys;
pub mod kv;
pub mod mounts;
pub mod ops;
pub mod path;
pub mod permission;
pub mod reclaim;
pub mod snapshot;
pub mod throttle;
pub mod tree;
pub mod upgrade;
pub mod walk;
mod write;

pub use error::{ApplyError, NsError, StoreError};
pub use inode::{Inode, InodeId, InodeKind, StoragePolicy};
pub use ops::{ApplyCtx, ContentSummary, Op, OpOutput, XattrExpect};
pub use path::NsPath;
pub use write::{RECOVERY_PREFIX, recovery_holder};

#[cfg(test)]
mod tests;
