//! raftfs's WebHDFS gateway (DESIGN §15): HDFS's REST API (`/webhdfs/v1/<path>?op=…`), so
//! that the tools HDFS users reach their file system with (HdfsCLI, fsspec, curl) reach raftfs
//! unchanged. Like HttpFS it is a process of its own in front of the cluster, built on the
//! client crate: every operation is a client call, and the bytes of `OPEN` and `CREATE` go
//! through the client's reader and writer.
//!
//! - [`request`]: an operation and its parameters, parsed and checked.
//! - [`server`]: the routes, and each operation's answer.
//! - [`https`]: `swebhdfs`, callers known by their client certificates.
//! - [`status`]: WebHDFS's JSON shapes.
//! - [`error`]: `RemoteException`s with HDFS's exception names and status codes.
//! - [`users`]: the clients of the users requests act as (a certificate's, or `user.name`).

pub mod error;
pub mod https;
pub mod request;
pub mod server;
pub mod status;
pub mod users;

pub use error::GatewayError;
pub use https::{serve_tls, server_config};
pub use server::{Connection, Gateway, Identity, router, serve};
pub use users::Users;
