//! raftfs's WebHDFS gateway (DESIGN §15): HDFS's REST API (`/webhdfs/v1/<path>?op=…`), so
//! that the tools HDFS users reach their file system with (HdfsCLI, fsspec, curl) reach raftfs
//! unchanged. Like HttpFS it is a process of its own in front of the cluster, built on the
//! client crate: every operation is a client call, and the bytes of `OPEN` and `CREATE` go
//! through the client's reader and writer.
//!
//! - [`request`]: an operation and its parameters, parsed and checked.
//! - [`server`]: the routes, and each operation's answer.
//! - [`status`]: WebHDFS's JSON shapes.
//! - [`error`]: `RemoteException`s with HDFS's exception names and status codes.
//! - [`users`]: the clients of the users requests act as (`user.name`).

pub mod error;
pub mod request;
pub mod server;
pub mod status;
pub mod users;

pub use error::GatewayError;
pub use server::{Gateway, router, serve};
pub use users::Users;
