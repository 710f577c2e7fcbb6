//! raftfs blockserver (DESIGN §6, §7): stores the internal blocks of replicated and
//! erasure-coded block groups, serves them to clients, and tells every metaserver what it
//! holds.
//!
//! - [`store`]: internal blocks in one directory, each with CRC32C checksums per 64 KiB
//!   chunk, written under a temporary name and made visible only when durable.
//! - [`pools`]: the block pools this server keeps, one per nameservice (DESIGN §10): a
//!   block is named by (pool, group, index), each pool has its directory in every volume.
//! - [`volumes`]: one store per disk and pool; where a new block goes, which volume failed, the
//!   storage figures, and the news of every block added or removed.
//! - [`service`]: the `BlockData` gRPC service (write, read, measure a block, a rack's part
//!   of a lost cell); its `status` module is the one map from [`BlockError`] and
//!   [`TaskError`] to `tonic::Status`.
//! - [`heartbeat`]: per metaserver, registration, heartbeats, full and incremental block
//!   reports, and deletions ordered in heartbeat replies.
//! - [`metaservers`]: the channels to the metaservers (also for corrupt-block reports).
//! - [`peers`]: the channels to the other blockservers, as reconstruction reads from them.
//! - [`config`], [`server`], [`metrics`]: configuration, wiring, Prometheus `/metrics`.
//!
//! - [`reconstruction`]: rebuilding lost internal blocks as the active asks, under xmits
//!   accounting that cannot leak and byte-rate budgets.
//! - [`scanner`]: every stored block read back and verified, slowly, once per period; corrupt
//!   copies are reported as a failed read would.

pub mod config;
pub mod convert;
pub mod error;
pub mod heartbeat;
pub mod metaservers;
pub mod metrics;
pub mod peers;
pub mod pools;
pub mod reconstruction;
pub mod scanner;
pub mod server;
pub mod service;
pub mod store;
pub mod tokens;
pub mod ui;
pub mod volumes;

pub use config::{Config, ServeArgs};
pub use error::{BlockError, TaskError};
