//! The one place where metaserver errors become gRPC statuses. The match is exhaustive over
//! [`MetaError`] and [`NsError`]: a new variant without a status does not compile.

use raftfs_proto::{ErrorDetail, ErrorKind, status_with_detail};
use tonic::{Code, Status};

use crate::error::MetaError;
use crate::namespace::NsError;

fn ns_code(e: &NsError) -> (Code, ErrorKind) {
    match e {
        NsError::InvalidPath { .. } => (Code::InvalidArgument, ErrorKind::InvalidPath),
        NsError::NotFound(_) => (Code::NotFound, ErrorKind::NotFound),
        NsError::AlreadyExists(_) => (Code::AlreadyExists, ErrorKind::AlreadyExists),
        NsError::NotADirectory(_) => (Code::FailedPrecondition, ErrorKind::NotADirectory),
        NsError::IsADirectory(_) => (Code::FailedPrecondition, ErrorKind::IsADirectory),
        NsError::DirectoryNotEmpty(_) => (Code::FailedPrecondition, ErrorKind::DirectoryNotEmpty),
        NsError::ParentNotFound(_) => (Code::NotFound, ErrorKind::ParentNotFound),
        NsError::LeaseConflict { .. } => (Code::FailedPrecondition, ErrorKind::LeaseConflict),
        NsError::RenameIntoSubtree { .. } => (Code::InvalidArgument, ErrorKind::RenameIntoSubtree),
        NsError::RootNotAllowed(_) => (Code::InvalidArgument, ErrorKind::RootNotAllowed),
        NsError::NotUnderConstruction(_) => {
            (Code::FailedPrecondition, ErrorKind::NotUnderConstruction)
        }
        NsError::InvalidArgument(_) => (Code::InvalidArgument, ErrorKind::InvalidArgument),
        NsError::XattrNotFound { .. } => (Code::NotFound, ErrorKind::XattrNotFound),
        NsError::XattrMismatch { .. } => (Code::Aborted, ErrorKind::XattrMismatch),
        NsError::RetryMismatch { .. } => (Code::FailedPrecondition, ErrorKind::RetryMismatch),
        NsError::PermissionDenied { .. } => (Code::PermissionDenied, ErrorKind::PermissionDenied),
        NsError::Snapshot(_) => (Code::FailedPrecondition, ErrorKind::Snapshot),
        // Retriable: the window ends, or the mount moves.
        NsError::ReadOnly { .. } => (Code::Unavailable, ErrorKind::ReadOnly),
    }
}

impl From<MetaError> for Status {
    fn from(e: MetaError) -> Status {
        let message = e.to_string();
        let mut detail = ErrorDetail {
            message,
            ..Default::default()
        };
        let code = match &e {
            MetaError::Namespace { source, state_id } => {
                let (code, kind) = ns_code(source);
                detail.kind = kind as i32;
                detail.state_id = *state_id;
                code
            }
            MetaError::NotActive { leader } => {
                detail.kind = ErrorKind::NotActive as i32;
                if let Some((id, addr)) = leader {
                    detail.leader_id = id.get();
                    detail.leader_addr = addr.clone();
                }
                Code::FailedPrecondition
            }
            MetaError::ObserverBehind { applied, .. } => {
                detail.kind = ErrorKind::ObserverBehind as i32;
                detail.state_id = *applied;
                Code::Unavailable
            }
            MetaError::InvalidArgument(_) => {
                detail.kind = ErrorKind::InvalidArgument as i32;
                Code::InvalidArgument
            }
            MetaError::UnknownNode(_) | MetaError::UnknownBlockServer(_) => {
                detail.kind = ErrorKind::UnknownNode as i32;
                Code::NotFound
            }
            MetaError::NoSpace(_) => {
                detail.kind = ErrorKind::NoSpace as i32;
                Code::ResourceExhausted
            }
            MetaError::Unavailable(_) => {
                detail.kind = ErrorKind::Unavailable as i32;
                Code::Unavailable
            }
            MetaError::Storage(_) => {
                detail.kind = ErrorKind::Storage as i32;
                Code::Internal
            }
            MetaError::Denied(_) => {
                detail.kind = ErrorKind::PermissionDenied as i32;
                Code::PermissionDenied
            }
            MetaError::WrongNameservice { .. } => {
                detail.kind = ErrorKind::WrongNameservice as i32;
                Code::FailedPrecondition
            }
            MetaError::Internal(_) => {
                detail.kind = ErrorKind::Internal as i32;
                Code::Internal
            }
        };
        status_with_detail(code, detail)
    }
}
