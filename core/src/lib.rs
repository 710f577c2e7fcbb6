//! raftfs-core: the domain every raftfs component shares, with no I/O, no RPC and no async
//! runtime, so that the servers, the client, the tools and (later) a simulator can all link it.
//!
//! - [`id`]: identifiers as types (inode, block group, blockserver, member, client, call,
//!   reconstruction task); [`member`]: a metaserver member's role.
//! - [`identity`]: who a caller is (certificate or simple-mode claim), the port policies, and
//!   the one rule of which class of call each may make.
//! - [`block_token`]: block access tokens: the keys, what a token claims, how a blockserver
//!   checks one.
//! - [`policy`]: storage policies, their one parser and the caps every component applies.
//! - [`layout`]: where each byte of an erasure-coded block group lives (cells, stripes,
//!   internal block lengths), overflow-free within the policy caps.
//! - [`namespace`]: the namespace as pure logic over a small key-value interface: validated
//!   paths, the stored records, every operation; the metaserver runs it over RocksDB inside
//!   its Raft state machine, tests over [`namespace::kv::MemKv`].
//! - [`model`]: the namespace's plain reference model, for property tests and checkers.
//! - [`reconstruction`], [`fsck`]: rebuilding lost internal blocks, and the health report of
//!   block groups, as the active computes them and the other side receives them.
//! - [`federation`]: nameservices, their block pools and the mount table that joins their
//!   namespaces into one tree (DESIGN §10).
//! - [`synthetic`]: the shape of a generated benchmark namespace and the paths in it.
//! - [`format`](mod@format): the versioned envelope of every record raftfs replicates or
//!   persists, and the rules for changing a record's type.
//!
//! Wire types (`raftfs-proto`) never appear here: each crate converts them at its edge.

#[cfg(feature = "proptest")]
pub mod arbitrary;
pub mod block_token;
pub mod checksum;
pub mod federation;
pub mod file_checksum;
pub mod format;
pub mod fsck;
pub mod id;
pub mod identity;
pub mod layout;
pub mod level;
pub mod member;
pub mod model;
pub mod namespace;
pub mod policy;
pub mod reconstruction;
pub mod synthetic;

pub use policy::{EcCodec, StoragePolicy};
