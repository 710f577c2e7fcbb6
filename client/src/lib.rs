//! The raftfs client library: every namespace operation against a metaserver cluster, with
//! failover to the active and state-ID tracking (DESIGN §5).
//!
//! - [`client`]: the [`Client`] API.
//! - [`file`]: files' bytes: the async writer and reader (replicated and striped, degraded
//!   reads).
//! - [`failover`]: finding and following the active; retries that keep the call id.
//! - [`discovery`]: `--meta`, `RAFTFS_META`, `--cluster DIR` (`cluster.json`).
//! - [`read_mode`]: where reads go (active, or observers with an auto-msync period).
//! - [`observers`]: reading from observers, moving on when one is behind or gone.
//! - [`model`]: the plain types results come back as.
//! - [`error`]: [`ClientError`], with the typed [`ErrorKind`] of a refusal.
//! - [`tls`]: the CA and client certificate of a TLS cluster, and the user name claimed on a
//!   simple-mode port.

pub mod client;
pub mod discovery;
pub mod error;
pub mod failover;
pub mod file;
pub mod model;
pub mod observers;
pub mod read_mode;
pub mod tls;

pub use client::{Client, ClientConfig, CreateOptions, StateToken};
pub use error::{ClientError, ErrorKind};
pub use file::{FileError, FileReader, FileWriter};
pub use model::{
    AdminLabel, AdminStatus, BlockLocation, BlockServerInfo, ClusterStatus, ContentSummary,
    DiffEntry, DiffKind, FileKind, FileStatus, ListPage, LocatedBlocks, LocatedGroup, Member,
    NodeStatus, ReconstructionStatus, WorkerStatus,
};
pub use read_mode::{AutoMsync, ReadMode};
pub use tls::ClientTls;
