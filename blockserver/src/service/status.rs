//! The one place where blockserver errors become gRPC statuses. The match is exhaustive over
//! [`BlockError`], [`StoreError`] and [`TaskError`]: a new variant without a status does not
//! compile.

use raftfs_proto::{ErrorDetail, ErrorKind, status_with_detail};
use tonic::{Code, Status};

use crate::error::{BlockError, TaskError};
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
        // A later lease recovery owns the block: this one gives up.
        StoreError::NewerGeneration { .. } => {
            (Code::FailedPrecondition, ErrorKind::StaleGeneration)
        }
    }
}

fn block_code(e: &BlockError) -> (Code, ErrorKind) {
    match e {
        BlockError::Store(s) => store_code(s),
        BlockError::NoVolume(_) => (Code::Unavailable, ErrorKind::Storage),
        BlockError::InvalidArgument(_) => (Code::InvalidArgument, ErrorKind::InvalidArgument),
        BlockError::Denied(_) => (Code::PermissionDenied, ErrorKind::PermissionDenied),
        BlockError::Token(_) => (Code::PermissionDenied, ErrorKind::InvalidBlockToken),
        // Not the block the caller wants: as if absent, so that it takes another copy.
        BlockError::Stale { .. } => (Code::NotFound, ErrorKind::StaleGeneration),
        BlockError::Unavailable(_) => (Code::Unavailable, ErrorKind::Unavailable),
        // The writer lost its group to lease recovery.
        BlockError::Recovered { .. } => (Code::Aborted, ErrorKind::StaleGeneration),
        BlockError::Internal(_) => (Code::Internal, ErrorKind::Internal),
    }
}

/// The codes of a `Partial` request that failed (the caller fails its task whatever the
/// code; the code says whose fault it was).
fn task_code(e: &TaskError) -> (Code, ErrorKind) {
    match e {
        TaskError::BadTask(_) | TaskError::Address { .. } => {
            (Code::InvalidArgument, ErrorKind::InvalidArgument)
        }
        // A source in this rack failed or did not answer: another try may find it back.
        TaskError::Source { .. }
        | TaskError::Length { .. }
        | TaskError::Timeout { .. }
        | TaskError::Checksum { .. }
        | TaskError::Busy { .. } => (Code::Unavailable, ErrorKind::Unavailable),
        TaskError::Store(b) => block_code(b),
        TaskError::Codec(_) | TaskError::NoProgress { .. } | TaskError::Thread(_) => {
            (Code::Internal, ErrorKind::Internal)
        }
    }
}

fn status(code: Code, kind: ErrorKind, message: String) -> Status {
    status_with_detail(
        code,
        ErrorDetail {
            kind: kind as i32,
            message,
            ..Default::default()
        },
    )
}

impl From<BlockError> for Status {
    fn from(e: BlockError) -> Status {
        let (code, kind) = block_code(&e);
        status(code, kind, e.to_string())
    }
}

impl From<TaskError> for Status {
    fn from(e: TaskError) -> Status {
        let (code, kind) = task_code(&e);
        status(code, kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::store::{BlockId, Generation};

    #[test]
    fn every_error_carries_its_code_and_kind() {
        let b = BlockId {
            pool: 0,
            group: 1,
            index: 0,
        };
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
                StoreError::NewerGeneration {
                    block: b,
                    stamped: Generation(3),
                    asked: Generation(2),
                }
                .into(),
                Code::FailedPrecondition,
                ErrorKind::StaleGeneration,
            ),
            (
                BlockError::Stale {
                    block: b,
                    stamped: Generation(1),
                    wanted: Generation(2),
                },
                Code::NotFound,
                ErrorKind::StaleGeneration,
            ),
            (
                BlockError::Unavailable("stream".into()),
                Code::Unavailable,
                ErrorKind::Unavailable,
            ),
            (
                BlockError::Recovered {
                    block: b,
                    length: 7,
                },
                Code::Aborted,
                ErrorKind::StaleGeneration,
            ),
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

    #[test]
    fn every_task_error_carries_its_code_and_kind() {
        let b = BlockId {
            pool: 0,
            group: 1,
            index: 0,
        };
        let cases: Vec<(TaskError, Code, ErrorKind)> = vec![
            (
                raftfs_core::reconstruction::InvalidTask::DuplicateSource(3).into(),
                Code::InvalidArgument,
                ErrorKind::InvalidArgument,
            ),
            (
                TaskError::Source {
                    addr: "a:1".into(),
                    status: Status::not_found("gone"),
                },
                Code::Unavailable,
                ErrorKind::Unavailable,
            ),
            (
                TaskError::Length {
                    addr: "a:1".into(),
                    got: 1,
                    want: 2,
                },
                Code::Unavailable,
                ErrorKind::Unavailable,
            ),
            (
                TaskError::Timeout {
                    addr: "a:1".into(),
                    after: std::time::Duration::from_secs(30),
                },
                Code::Unavailable,
                ErrorKind::Unavailable,
            ),
            (
                BlockError::from(StoreError::Corrupt {
                    block: b,
                    chunk: 0,
                    offset: 0,
                    why: "x".into(),
                })
                .into(),
                Code::DataLoss,
                ErrorKind::CorruptBlock,
            ),
            (
                raftfs_codec::CodecError::Shape("x".into()).into(),
                Code::Internal,
                ErrorKind::Internal,
            ),
            (
                TaskError::NoProgress { at: 0, len: 1 },
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
        let source = TaskError::Source {
            addr: "10.0.0.1:7000".into(),
            status: Status::not_found("block 1/0 not found"),
        };
        assert_eq!(source.to_string(), "10.0.0.1:7000: block 1/0 not found");
    }
}
