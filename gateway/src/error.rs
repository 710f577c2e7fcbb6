//! Errors as WebHDFS clients expect them: an HTTP status and a `RemoteException` naming the
//! Java exception a NameNode would have thrown, so that HdfsCLI and fsspec raise what they
//! raise for HDFS (`FileNotFoundError` for `FileNotFoundException`, `PermissionError` for
//! `AccessControlException`, ...). One exhaustive map from raftfs's error kinds.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use raftfs_client::{ClientError, ErrorKind, FileError};

/// Why a gateway request failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request itself is wrong (operation, parameter, path): nothing was asked.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    File(#[from] FileError),
    /// Reading the request's body failed (the caller went away, or sent a broken body).
    #[error("reading the request body: {0}")]
    Body(String),
    /// Writing the file failed for a reason that is not a `FileError`.
    #[error("writing the file: {0}")]
    Write(String),
}

impl GatewayError {
    /// A refusal the gateway words itself, mapped as the cluster's of the same kind.
    pub fn refused(kind: ErrorKind, message: String) -> GatewayError {
        GatewayError::Client(ClientError::Refused {
            kind,
            message,
            state_id: 0,
            state_ids: Default::default(),
        })
    }

    /// A failure of a `FileWriter` (through `AsyncWrite`'s `io::Error`): the file error it
    /// carries, so that it is mapped as any other (a cluster between actives, no space).
    pub fn from_write(e: std::io::Error) -> GatewayError {
        let text = e.to_string();
        match e.into_inner().map(|inner| inner.downcast::<FileError>()) {
            Some(Ok(file)) => GatewayError::File(*file),
            _ => GatewayError::Write(text),
        }
    }
}

/// The Java exception, its class and the HTTP status for one failure.
struct Remote {
    status: StatusCode,
    exception: &'static str,
    class: &'static str,
}

const fn remote(status: StatusCode, exception: &'static str, class: &'static str) -> Remote {
    Remote {
        status,
        exception,
        class,
    }
}

const NOT_FOUND: Remote = remote(
    StatusCode::NOT_FOUND,
    "FileNotFoundException",
    "java.io.FileNotFoundException",
);
const ILLEGAL: Remote = remote(
    StatusCode::BAD_REQUEST,
    "IllegalArgumentException",
    "java.lang.IllegalArgumentException",
);
const DENIED: Remote = remote(
    StatusCode::FORBIDDEN,
    "AccessControlException",
    "org.apache.hadoop.security.AccessControlException",
);
const IO: Remote = remote(StatusCode::FORBIDDEN, "IOException", "java.io.IOException");
const RETRY: Remote = remote(
    StatusCode::SERVICE_UNAVAILABLE,
    "RetriableException",
    "org.apache.hadoop.ipc.RetriableException",
);
const INTERNAL: Remote = remote(
    StatusCode::INTERNAL_SERVER_ERROR,
    "IOException",
    "java.io.IOException",
);

/// The exception HDFS throws for what raftfs refused with `kind`.
fn remote_of_kind(kind: ErrorKind) -> Remote {
    match kind {
        ErrorKind::NotFound | ErrorKind::ParentNotFound | ErrorKind::IsADirectory => NOT_FOUND,
        ErrorKind::AlreadyExists => remote(
            StatusCode::FORBIDDEN,
            "FileAlreadyExistsException",
            "org.apache.hadoop.fs.FileAlreadyExistsException",
        ),
        ErrorKind::DirectoryNotEmpty => remote(
            StatusCode::FORBIDDEN,
            "PathIsNotEmptyDirectoryException",
            "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException",
        ),
        ErrorKind::NotADirectory => remote(
            StatusCode::FORBIDDEN,
            "ParentNotDirectoryException",
            "org.apache.hadoop.fs.ParentNotDirectoryException",
        ),
        ErrorKind::LeaseConflict => remote(
            StatusCode::FORBIDDEN,
            "AlreadyBeingCreatedException",
            "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException",
        ),
        ErrorKind::Snapshot => remote(
            StatusCode::FORBIDDEN,
            "SnapshotAccessControlException",
            "org.apache.hadoop.hdfs.protocol.SnapshotAccessControlException",
        ),
        ErrorKind::PermissionDenied | ErrorKind::Unauthenticated => DENIED,
        ErrorKind::InvalidPath | ErrorKind::InvalidArgument | ErrorKind::RetryMismatch => ILLEGAL,
        ErrorKind::ReadOnly
        | ErrorKind::NotActive
        | ErrorKind::ObserverBehind
        | ErrorKind::Unavailable => RETRY,
        ErrorKind::RenameIntoSubtree
        | ErrorKind::RootNotAllowed
        | ErrorKind::NotUnderConstruction
        | ErrorKind::XattrNotFound
        | ErrorKind::XattrMismatch
        | ErrorKind::NoSpace
        | ErrorKind::CorruptBlock
        | ErrorKind::BlockNotFound
        | ErrorKind::InvalidBlockToken
        | ErrorKind::StaleGeneration
        | ErrorKind::CrossNamespaceRename
        | ErrorKind::MountPoint
        | ErrorKind::NotMounted => IO,
        ErrorKind::Unspecified
        | ErrorKind::UnknownNode
        | ErrorKind::Internal
        | ErrorKind::Storage
        | ErrorKind::WrongNameservice => INTERNAL,
    }
}

fn remote_of_client(e: &ClientError) -> Remote {
    match e {
        ClientError::Refused { kind, .. } => remote_of_kind(*kind),
        ClientError::Unavailable { .. } => RETRY,
        ClientError::Config(_) | ClientError::Rpc(_) => INTERNAL,
    }
}

impl GatewayError {
    fn remote(&self) -> Remote {
        match self {
            GatewayError::BadRequest(_) => ILLEGAL,
            GatewayError::Client(e) => remote_of_client(e),
            GatewayError::File(FileError::Namespace(e)) => remote_of_client(e),
            GatewayError::File(FileError::Policy(_)) => ILLEGAL,
            GatewayError::File(
                FileError::TooManyFailures { .. }
                | FileError::NoSpace { .. }
                | FileError::Unreadable { .. }
                | FileError::Replaced { .. }
                | FileError::Codec(_)
                | FileError::Closed,
            ) => IO,
            GatewayError::Body(_) | GatewayError::Write(_) => IO,
        }
    }

    /// The error with HDFS's message where clients read the message: HdfsCLI tells a
    /// missing path by "does not exist" in a `FileNotFoundException`'s message, as a
    /// NameNode words it.
    pub fn in_hdfs_words(self, path: &str) -> GatewayError {
        let not_found = match &self {
            GatewayError::Client(e) => e.is(ErrorKind::NotFound),
            GatewayError::File(FileError::Namespace(e)) => e.is(ErrorKind::NotFound),
            _ => false,
        };
        if !not_found {
            return self;
        }
        GatewayError::refused(ErrorKind::NotFound, format!("File {path} does not exist."))
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.remote().status
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let r = self.remote();
        let body = serde_json::json!({
            "RemoteException": {
                "exception": r.exception,
                "javaClassName": r.class,
                "message": self.to_string(),
            }
        });
        (r.status, Json(body)).into_response()
    }
}
