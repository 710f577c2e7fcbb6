//! The one place where blockserver errors become gRPC statuses. The match is exhaustive over
//! [`BlockError`] and [`StoreError`]: a new variant without a status does not compile.

use raftfs_proto::{ErrorDetail, ErrorKind, status_with_detail};
use tonic::{Code, Status};

use crate::error::BlockError;
use crate::store::StoreError;

fn store_code(e: &StoreError) -> (Code, ErrorKind) {
    match e {
        StoreError::NotFound(_) => (Code::NotFound, ErrorKind::BlockNotFound),
        StoreError::AlreadyExists(_) => (Code::AlreadyExists, ErrorKind::AlreadyExists),
        // The reader should take another copy; the block gets rebuilt.
        StoreError::Corrupt { .. } => (Code::DataLoss, ErrorKind::CorruptBlock),
        StoreError::OutOfRange { .. } => (Code::OutOfRange, ErrorKind::InvalidArgument),
        // The writer should ask the active for another target.
        StoreError::NoSpace(_) => (Code::ResourceExhausted, ErrorKind::NoSpace),
        StoreError::Io { .. } => (Code::Internal, ErrorKind::Storage),
    }
}

impl From<BlockError> for Status {
    fn from(e: BlockError) -> Status {
        let (code, kind) = match &e {
            BlockError::Store(s) => store_code(s),
            BlockError::NoVolume(_) => (Code::Unavailable, ErrorKind::Storage),
            BlockError::InvalidArgument(_) => (Code::InvalidArgument, ErrorKind::InvalidArgument),
            BlockError::Internal(_) => (Code::Internal, ErrorKind::Internal),
        };
        status_with_detail(
            code,
            ErrorDetail {
                kind: kind as i32,
                message: e.to_string(),
                ..Default::default()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::store::BlockId;

    #[test]
    fn every_error_carries_its_code_and_kind() {
        let b = BlockId { group: 1, index: 0 };
        let io = || StoreError::Io {
            path: PathBuf::from("/d"),
            source: std::io::Error::other("EIO"),
        };
        let cases: Vec<(BlockError, Code, ErrorKind)> = vec![
            (
                StoreError::NotFound(b).into(),
                Code::NotFound,
                ErrorKind::BlockNotFound,
            ),
            (
                StoreError::AlreadyExists(b).into(),
                Code::AlreadyExists,
                ErrorKind::AlreadyExists,
            ),
            (
                StoreError::Corrupt {
                    block: b,
                    chunk: 1,
                    offset: 65536,
                    why: "x".into(),
                }
                .into(),
                Code::DataLoss,
                ErrorKind::CorruptBlock,
            ),
            (
                StoreError::OutOfRange {
                    block: b,
                    length: 1,
                    offset: 2,
                    len: 3,
                }
                .into(),
                Code::OutOfRange,
                ErrorKind::InvalidArgument,
            ),
            (
                StoreError::NoSpace(PathBuf::from("/d")).into(),
                Code::ResourceExhausted,
                ErrorKind::NoSpace,
            ),
            (io().into(), Code::Internal, ErrorKind::Storage),
            (
                BlockError::NoVolume(2),
                Code::Unavailable,
                ErrorKind::Storage,
            ),
            (
                BlockError::InvalidArgument("x".into()),
                Code::InvalidArgument,
                ErrorKind::InvalidArgument,
            ),
            (
                BlockError::Internal("x".into()),
                Code::Internal,
                ErrorKind::Internal,
            ),
        ];
        for (e, code, kind) in cases {
            let text = e.to_string();
            let status = Status::from(e);
            assert_eq!(status.code(), code, "{text}");
            let detail = raftfs_proto::detail_of(&status).expect("detail");
            assert_eq!(detail.kind, kind as i32, "{text}");
            assert_eq!(detail.message, text);
        }
    }
}
