//! raftfs blockserver (DESIGN §6, §7): stores the internal blocks of replicated and
//! erasure-coded block groups.
//!
//! - [`store`]: internal blocks on disk, each with CRC32C checksums per 64 KiB chunk, written
//!   under a temporary name and made visible only when durable.
//!
//! Registration, heartbeats, block reports, the gRPC service and reconstruction are the next
//! parts of the data-path issue.

pub mod store;
