//! The raftfs router (DESIGN §10): a stateless process that speaks the client protocol and
//! forwards each call to the nameservice owning its path, so that unchanged clients and
//! `metactl` see one tree over several nameservices. Several routers can run at once: all
//! a router keeps is a copy of the mount table and connections.
//!
//! - [`service`]: the `Namespace` calls, each resolved and forwarded; a router's `Admin`.
//! - [`state_ids`]: the consistency contract through a router: one state ID per
//!   nameservice, each nameservice sent only its own (HDFS-17156), msync only where the
//!   client has been (HDFS-16452, HDFS-17111).
//! - [`paths`]: paths into a nameservice and back; listings with mount points.
//! - [`table`]: the mount table, polled from the nameservice that keeps it.
//! - [`upstreams`]: one client-crate client per nameservice (its failover and observer reads).
//! - [`error`]: [`RouterError`] and its one status map.
//! - [`metrics`]: `/metrics`: calls by method and nameservice, the mount table's reads.
//! - [`config`], [`server`]: configuration and wiring.

pub mod config;
pub mod error;
pub mod metrics;
pub mod paths;
pub mod server;
pub mod service;
pub mod state_ids;
pub mod table;
pub mod upstreams;

pub use config::{Config, ServeArgs};
pub use error::RouterError;
