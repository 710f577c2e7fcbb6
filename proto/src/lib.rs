//! The raftfs wire protocol: protobuf messages and tonic services generated from
//! `proto/raftfs.proto`. Nothing here is validated: servers and the client convert these into
//! their domain types once, on the receiving side.

#![allow(
    missing_docs,
    clippy::all,
    clippy::unwrap_used,
    missing_debug_implementations
)]

/// Version 1 of the protocol.
pub mod v1 {
    tonic::include_proto!("raftfs.v1");
}

pub use v1::*;

/// Encodes an [`ErrorDetail`] as the binary details of a `tonic::Status`, so that clients
/// branch on `kind` (and on the active's address) rather than on message text.
pub fn status_with_detail(code: tonic::Code, detail: ErrorDetail) -> tonic::Status {
    use prost::Message;
    let message = detail.message.clone();
    tonic::Status::with_details(code, message, detail.encode_to_vec().into())
}

/// Decodes the [`ErrorDetail`] of a status, if it carries one.
pub fn detail_of(status: &tonic::Status) -> Option<ErrorDetail> {
    use prost::Message;
    if status.details().is_empty() {
        return None;
    }
    ErrorDetail::decode(status.details()).ok()
}

/// Never prints the secret.
impl std::fmt::Debug for BlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockKey")
            .field("id", &self.id)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}
