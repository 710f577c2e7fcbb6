//! gRPC services of the metaserver: `Namespace` for clients, `Admin` for operators, `Raft`
//! between metaservers. Every handler runs in a `tracing` span and is counted in
//! [`crate::metrics`]; every error goes through [`status`].

pub mod admin;
pub mod blockservers;
pub mod convert;
pub mod namespace;
pub mod raft;
pub mod status;
