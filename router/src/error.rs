//! The router's errors and the one place they become gRPC statuses.

use raftfs_client::ClientError;
use raftfs_core::federation::{FederationError, NameserviceId};
use raftfs_proto::{ErrorDetail, ErrorKind, status_with_detail};
use tonic::{Code, Status};

/// Why a router did not answer a call with a nameservice's answer.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// Refused by the mount table before any nameservice was asked.
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error("invalid path {path:?}: {why}")]
    InvalidPath { path: String, why: String },
    #[error("{0}")]
    InvalidArgument(&'static str),
    /// A call a router does not forward (it is one nameservice's business, or a blockserver's).
    #[error("{0}: ask the nameservice's members directly")]
    NotThroughRouter(&'static str),
    /// The mount table names a nameservice this router has no members for.
    #[error("the mount table names nameservice {0}, which this router is not configured for")]
    UnknownNameservice(String),
    /// The mount table has not been read yet (the nameservice keeping it is unreachable).
    #[error("the mount table is not loaded yet: {0}")]
    NoTable(String),
    /// The nameservice answered with an error, or could not be reached.
    #[error("{nameservice}: {source}")]
    Upstream {
        nameservice: NameserviceId,
        source: ClientError,
    },
}

impl RouterError {
    pub fn upstream(nameservice: &NameserviceId) -> impl FnOnce(ClientError) -> Self + '_ {
        move |source| RouterError::Upstream {
            nameservice: nameservice.clone(),
            source,
        }
    }
}

/// The status code that goes with a refusal's kind (clients act on the kind; the code is
/// for tools that only read codes).
fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::NotFound | ErrorKind::ParentNotFound | ErrorKind::XattrNotFound => {
            Code::NotFound
        }
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::InvalidPath
        | ErrorKind::InvalidArgument
        | ErrorKind::RenameIntoSubtree
        | ErrorKind::RootNotAllowed
        | ErrorKind::CrossNamespaceRename
        | ErrorKind::MountPoint => Code::InvalidArgument,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::XattrMismatch => Code::Aborted,
        ErrorKind::Unavailable | ErrorKind::ObserverBehind | ErrorKind::ReadOnly => {
            Code::Unavailable
        }
        ErrorKind::Internal | ErrorKind::Storage => Code::Internal,
        _ => Code::FailedPrecondition,
    }
}

fn federation_kind(e: &FederationError) -> ErrorKind {
    match e {
        FederationError::CrossNamespaceRename { .. } => ErrorKind::CrossNamespaceRename,
        FederationError::MountPoint(_) => ErrorKind::MountPoint,
        FederationError::NotMounted(_) => ErrorKind::NotMounted,
        FederationError::AlreadyMounted(_) => ErrorKind::AlreadyExists,
        FederationError::BadNameservice { .. }
        | FederationError::TooManyMounts
        | FederationError::RootMount => ErrorKind::InvalidArgument,
    }
}

fn refused(kind: ErrorKind, message: String) -> Status {
    status_with_detail(
        code_of(kind),
        ErrorDetail {
            kind: kind as i32,
            message,
            ..Default::default()
        },
    )
}

impl From<RouterError> for Status {
    fn from(e: RouterError) -> Status {
        let message = e.to_string();
        match e {
            RouterError::Federation(f) => refused(federation_kind(&f), message),
            RouterError::InvalidPath { .. } => refused(ErrorKind::InvalidPath, message),
            RouterError::NotThroughRouter(_) | RouterError::InvalidArgument(_) => {
                refused(ErrorKind::InvalidArgument, message)
            }
            // Another router may be configured for it: the client moves on.
            RouterError::UnknownNameservice(_) => refused(ErrorKind::Unavailable, message),
            // Another router may have the table: the client moves on.
            RouterError::NoTable(_) => refused(ErrorKind::Unavailable, message),
            RouterError::Upstream {
                nameservice,
                source,
            } => upstream_status(&nameservice, source, message),
        }
    }
}

/// A nameservice's refusal passes through with its kind and the state it reflects, named
/// by nameservice (the client keeps it as that nameservice's); a nameservice that could not
/// be reached is `Unavailable`, so the client may try another router.
fn upstream_status(ns: &NameserviceId, e: ClientError, message: String) -> Status {
    match e {
        ClientError::Refused { kind, state_id, .. } => status_with_detail(
            code_of(kind),
            ErrorDetail {
                kind: kind as i32,
                message,
                state_id,
                // 0: the refusal reflects no state (refused before anything was journaled).
                state_ids: [(ns.as_str().to_owned(), state_id)]
                    .into_iter()
                    .filter(|(_, id)| *id > 0)
                    .collect(),
                ..Default::default()
            },
        ),
        ClientError::Unavailable { .. } => refused(ErrorKind::Unavailable, message),
        ClientError::Config(_) => refused(ErrorKind::Internal, message),
        ClientError::Rpc(status) => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftfs_proto::detail_of;

    #[test]
    fn a_refusal_keeps_its_kind_and_names_its_nameservice() {
        let ns = NameserviceId::parse("ns2").expect("name");
        let e = RouterError::Upstream {
            nameservice: ns,
            source: ClientError::Refused {
                kind: ErrorKind::NotFound,
                message: "/x".into(),
                state_id: 77,
                state_ids: Default::default(),
            },
        };
        let detail = detail_of(&Status::from(e)).expect("detail");
        assert_eq!(detail.kind, ErrorKind::NotFound as i32);
        assert_eq!(detail.state_id, 77);
        assert_eq!(detail.state_ids.get("ns2"), Some(&77));
    }

    #[test]
    fn a_cross_mount_rename_is_its_own_kind() {
        let p = |s| raftfs_core::namespace::NsPath::parse(s).expect("path");
        let e = RouterError::from(FederationError::CrossNamespaceRename {
            src: p("/user/a"),
            dst: p("/logs/a"),
        });
        let detail = detail_of(&Status::from(e)).expect("detail");
        assert_eq!(detail.kind, ErrorKind::CrossNamespaceRename as i32);
    }
}
