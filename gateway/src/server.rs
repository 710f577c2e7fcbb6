//! The HTTP side: `/webhdfs/v1/<path>?op=…` routed to the operations, each answered with
//! WebHDFS's JSON or bytes. `OPEN` and `CREATE` are two steps, as on a NameNode: the first
//! answers 307 with the `Location` of the data step (this gateway again, `data=true`), which
//! streams the bytes through the client crate's reader and writer: striping, degraded reads,
//! failover and state IDs are the client's, not written again here.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use raftfs_client::{
    Client, ClientError, CreateOptions, ErrorKind, FileKind, FileReader, FileWriter,
};
use raftfs_core::identity::User;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::error::GatewayError;
use crate::request::{self, Create, Encoding, Op, XattrFlag};
use crate::status;
use crate::users::Users;

/// The URL prefix of every WebHDFS call.
pub const PREFIX: &str = "/webhdfs/v1";

/// Bytes read from the cluster per piece of an `OPEN` answer.
const READ_CHUNK: u64 = 4 << 20;

/// Pieces of an `OPEN` answer read at once (being read or waiting to be sent).
const READ_AHEAD: usize = 2;

/// A page of `LISTSTATUS` asked of the metaserver.
const LIST_PAGE: u32 = 1000;

/// The gateway's state: the clients of its users, and how many entries a listing's page
/// holds.
#[derive(Debug)]
pub struct Gateway {
    users: Users,
    ls_limit: u32,
}

impl Gateway {
    pub fn new(users: Users) -> Self {
        Self {
            users,
            ls_limit: LIST_PAGE,
        }
    }

    /// Entries per page: a `LISTSTATUS_BATCH` answer, and each call `LISTSTATUS` makes
    /// (HDFS's `dfs.ls.limit`).
    pub fn with_ls_limit(mut self, limit: u32) -> Self {
        self.ls_limit = limit.max(1);
        self
    }
}

/// What the gateway knows of a request from its connection: the scheme it came in on (the
/// data step's location keeps it) and who the caller is.
#[derive(Debug, Clone)]
pub struct Connection {
    pub scheme: &'static str,
    pub identity: Identity,
}

/// Who a connection's caller is.
#[derive(Debug, Clone)]
pub enum Identity {
    /// Over HTTP: each request names its user (`user.name`, HDFS's simple mode).
    Named,
    /// Over HTTPS: the user the verified client certificate names.
    Certified(User),
    /// Over HTTPS, a verified certificate that names no user (a node's): every request is
    /// refused, with why.
    Refused(String),
}

impl Connection {
    /// A plain HTTP connection: its requests name their user (`user.name`).
    pub fn plain() -> Self {
        Self {
            scheme: "http",
            identity: Identity::Named,
        }
    }

    /// The user a request on this connection acts as; `acts_for_users`: whether the gateway
    /// acts for its users with a certificate of its own ([`Users::acts_for_users`]).
    fn user(&self, named: Option<&str>, acts_for_users: bool) -> Result<User, GatewayError> {
        match &self.identity {
            Identity::Named if acts_for_users => Err(GatewayError::refused(
                ErrorKind::PermissionDenied,
                "this gateway acts only for callers known by their client certificates \
                 (swebhdfs); user.name is not verified"
                    .into(),
            )),
            Identity::Named => crate::users::named(named),
            // `user.name` is ignored, as HDFS ignores it once a request is authenticated.
            Identity::Certified(u) => Ok(u.clone()),
            Identity::Refused(why) => Err(GatewayError::refused(
                ErrorKind::PermissionDenied,
                why.clone(),
            )),
        }
    }
}

/// The gateway's routes, for requests that carry their [`Connection`] as an extension.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route(PREFIX, axum::routing::any(handle))
        .route(&format!("{PREFIX}/"), axum::routing::any(handle))
        .route(&format!("{PREFIX}/{{*path}}"), axum::routing::any(handle))
        .with_state(gateway)
}

/// Serves the gateway on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(gateway).layer(Extension(Arc::new(Connection::plain())));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[tracing::instrument(skip_all, fields(method = %method, path = uri.path()))]
async fn handle(
    State(gw): State<Arc<Gateway>>,
    Extension(conn): Extension<Arc<Connection>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Body,
) -> Response {
    match answer(&gw, &conn, &method, &uri, &headers, query, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "refused");
            let path = fs_path(&uri).unwrap_or_default();
            e.in_hdfs_words(&path).into_response()
        }
    }
}

/// The file system path a request names: the URL path after the prefix, percent-decoded.
fn fs_path(uri: &Uri) -> Result<String, GatewayError> {
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or("");
    let decoded = percent_decode(raw)
        .ok_or_else(|| GatewayError::BadRequest(format!("{raw:?} is not a valid path")))?;
    Ok(if decoded.is_empty() {
        "/".to_owned()
    } else {
        decoded
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn answer(
    gw: &Gateway,
    conn: &Connection,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: Vec<(String, String)>,
    body: Body,
) -> Result<Response, GatewayError> {
    let req = request::parse(method, query)?;
    let path = fs_path(uri)?;
    let user = conn.user(req.user.as_deref(), gw.users.acts_for_users())?;
    let client = gw.users.client(&user)?;
    match req.op {
        Op::Open { .. } | Op::Create(_) | Op::Append if !req.data_step => {
            redirect(conn.scheme, uri, headers, req.no_redirect, &req.op)
        }
        Op::Open { offset, length } => open(&client, &path, offset, length).await,
        Op::Create(c) => {
            let writer = gw.users.writer(&user)?;
            let r = create(&writer, &path, &c, body).await;
            gw.users.seen(&user, &writer)?;
            r
        }
        Op::Append => {
            let writer = gw.users.writer(&user)?;
            let r = append(&writer, &path, body).await;
            gw.users.seen(&user, &writer)?;
            r
        }
        Op::GetFileStatus => Ok(json_ok(status::get_file_status(&client.stat(&path).await?))),
        Op::ListStatus => list_status(&client, &path, gw.ls_limit).await,
        Op::ListStatusBatch { start_after } => {
            list_status_batch(&client, &path, &start_after, gw.ls_limit).await
        }
        Op::GetContentSummary => Ok(json_ok(status::content_summary(
            &client.content_summary(&path).await?,
        ))),
        Op::GetFileChecksum => Ok(json_ok(status::file_checksum(
            &raftfs_client::file::file_checksum(&client, &path).await?,
        ))),
        Op::GetHomeDirectory => Ok(json_ok(json!({
            "Path": format!("/user/{}", user.name),
        }))),
        Op::Mkdirs { permission } => mkdirs(&client, &path, permission).await,
        Op::Rename { destination } => rename(&client, &path, &destination).await,
        Op::Delete { recursive } => delete(&client, &path, recursive).await,
        Op::SetPermission { permission } => {
            client.set_permission(&path, permission).await?;
            Ok(empty_ok())
        }
        Op::SetOwner { owner, group } => {
            client.set_owner(&path, &owner, &group).await?;
            Ok(empty_ok())
        }
        Op::SetTimes { mtime, atime } => {
            client.set_times(&path, mtime, atime).await?;
            Ok(empty_ok())
        }
        Op::GetXattrs { names, encoding } => get_xattrs(&client, &path, &names, encoding).await,
        Op::ListXattrs => {
            let names: Vec<String> = client
                .get_xattrs(&path, &[])
                .await?
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            // HDFS answers the names as a string holding a JSON array.
            let inner = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
            Ok(json_ok(json!({ "XAttrNames": inner })))
        }
        Op::SetXattr { name, value, flag } => {
            set_xattr(&client, &path, &name, &value, flag).await?;
            Ok(empty_ok())
        }
        Op::RemoveXattr { name } => {
            client.remove_xattr(&path, &name).await?;
            Ok(empty_ok())
        }
        Op::GetEcPolicy => Ok(json_ok(status::ec_policy(
            &client.get_storage_policy(&path).await?,
        ))),
        Op::SetEcPolicy { policy } => {
            client.set_storage_policy(&path, &policy).await?;
            Ok(empty_ok())
        }
        Op::UnsetEcPolicy => {
            // raftfs keeps a policy on every directory: unset is its parent's again.
            let parent = parent_of(&path).ok_or_else(|| {
                GatewayError::BadRequest("the root's policy cannot be unset".into())
            })?;
            let inherited = client.get_storage_policy(parent).await?;
            client.set_storage_policy(&path, &inherited).await?;
            Ok(empty_ok())
        }
        Op::AllowSnapshot => {
            client.allow_snapshot(&path).await?;
            Ok(empty_ok())
        }
        Op::DisallowSnapshot => {
            client.disallow_snapshot(&path).await?;
            Ok(empty_ok())
        }
        Op::CreateSnapshot { name } => {
            let made = client.create_snapshot(&path, name.as_deref()).await?;
            let root = path.trim_end_matches('/');
            Ok(json_ok(
                json!({ "Path": format!("{root}/.snapshot/{made}") }),
            ))
        }
        Op::DeleteSnapshot { name } => {
            client.delete_snapshot(&path, &name).await?;
            Ok(empty_ok())
        }
        Op::RenameSnapshot { from, to } => {
            client.rename_snapshot(&path, &from, &to).await?;
            Ok(empty_ok())
        }
        Op::GetSnapshotDiff { from, to } => {
            // HDFS names the live tree "" where raftfs names it ".".
            let side = |s: &str| {
                if s.is_empty() {
                    ".".to_owned()
                } else {
                    s.to_owned()
                }
            };
            let diff = client
                .snapshot_diff(&path, &side(&from), &side(&to))
                .await?;
            Ok(json_ok(status::snapshot_diff(&path, &from, &to, &diff)))
        }
    }
}

/// The parent directory of `path`; none for the root.
fn parent_of(path: &str) -> Option<&str> {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", name)) if !name.is_empty() => Some("/"),
        Some((parent, name)) if !name.is_empty() => Some(parent),
        _ => None,
    }
}

fn json_ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn empty_ok() -> Response {
    (StatusCode::OK, [(header::CONTENT_LENGTH, "0")]).into_response()
}

fn boolean(b: bool) -> Response {
    json_ok(json!({ "boolean": b }))
}

/// The first step of `OPEN`, `CREATE` and `APPEND`: where the bytes go, this gateway again with
/// `data=true`, at the address the caller reached it by.
fn redirect(
    scheme: &str,
    uri: &Uri,
    headers: &HeaderMap,
    no_redirect: bool,
    op: &Op,
) -> Result<Response, GatewayError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| GatewayError::BadRequest("the request has no Host header".into()))?;
    let query = uri.query().unwrap_or("");
    let location = format!("{scheme}://{host}{}?{query}&data=true", uri.path());
    if no_redirect {
        return Ok(json_ok(json!({ "Location": location })));
    }
    let value = HeaderValue::from_str(&location)
        .map_err(|_| GatewayError::BadRequest("the request's URL is not a valid header".into()))?;
    tracing::debug!(?op, %location, "redirected to the data step");
    Ok((
        StatusCode::TEMPORARY_REDIRECT,
        [
            (header::LOCATION, value),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ],
    )
        .into_response())
}

/// A piece's read task, stopped when the answer is dropped (the caller went away): its
/// reads ahead are not finished for nobody.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `OPEN`'s data step: the bytes `[offset, offset + length)` (to the end without a length),
/// streamed as they are read.
async fn open(
    client: &Client,
    path: &str,
    offset: u64,
    length: Option<u64>,
) -> Result<Response, GatewayError> {
    let reader = Arc::new(FileReader::open(client, path).await?);
    let len = reader.len();
    if offset > len {
        return Err(GatewayError::BadRequest(format!(
            "offset {offset} is past the end of {path} ({len} bytes)"
        )));
    }
    let end = length.map_or(len, |l| offset.saturating_add(l).min(len));
    // Each piece is read by a task of its own, READ_AHEAD pieces ahead of the one being
    // sent: the next piece comes from the blockservers while this one goes out. Read in turn,
    // a replicated file's pieces and their sending took turns, and over HTTPS, where sending
    // costs the encryption, the gateway read at 0.7 of `metactl` (README).
    let pieces = (offset..end).step_by(usize::try_from(READ_CHUNK).unwrap_or(usize::MAX));
    let stream = futures::stream::iter(pieces)
        .map(move |pos| {
            let reader = reader.clone();
            AbortOnDrop(tokio::spawn(async move {
                (pos, reader.read_at(pos, READ_CHUNK.min(end - pos)).await)
            }))
        })
        .buffered(READ_AHEAD)
        .map(|joined| match joined {
            Ok((_, Ok(bytes))) => Ok(bytes::Bytes::from(bytes)),
            Ok((pos, Err(e))) => {
                tracing::warn!(error = %e, pos, "OPEN failed while streaming");
                Err(std::io::Error::from(e))
            }
            Err(e) => Err(std::io::Error::other(format!("read task: {e}"))),
        })
        // A failed piece ends the answer after its error: the body is then short of its
        // Content-Length, and the caller sees the cut.
        .scan(false, |ended, piece| {
            let stop = *ended;
            *ended = piece.is_err();
            futures::future::ready((!stop).then_some(piece))
        });
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(end - offset)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The storage policy a `replication` asks for: `REPLICATED-N` where the file would be
/// replicated anyway; an erasure-coded directory's files stay coded (HDFS ignores the
/// replication of files under an erasure-coding policy too).
async fn policy_for(client: &Client, path: &str, c: &Create) -> Result<String, GatewayError> {
    let Some(n) = c.replication else {
        return Ok(String::new());
    };
    // Missing parents are created with the file: the nearest existing ancestor decides.
    let mut ancestor = parent_of(path).unwrap_or("/");
    let inherited = loop {
        match client.get_storage_policy(ancestor).await {
            Ok(p) => break p,
            Err(e) if e.is(ErrorKind::NotFound) && ancestor != "/" => {
                ancestor = parent_of(ancestor).unwrap_or("/");
            }
            Err(e) => return Err(e.into()),
        }
    };
    Ok(if inherited.starts_with("REPLICATED") {
        format!("REPLICATED-{n}")
    } else {
        String::new()
    })
}

/// `CREATE`'s data step: the body streamed into a new file, completed when it ends.
async fn create(
    client: &Client,
    path: &str,
    c: &Create,
    body: Body,
) -> Result<Response, GatewayError> {
    let opts = CreateOptions {
        overwrite: c.overwrite,
        create_parents: true,
        permission: c.permission.unwrap_or(0),
        storage_policy: policy_for(client, path, c).await?,
        block_size: c.block_size.unwrap_or(0),
    };
    let writer = FileWriter::create(client, path, &opts).await?;
    write_body(writer, body).await?;
    Ok((StatusCode::CREATED, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// `APPEND`'s data step: the body written after the file's end.
async fn append(client: &Client, path: &str, body: Body) -> Result<Response, GatewayError> {
    let writer = FileWriter::append(client, path).await?;
    write_body(writer, body).await?;
    Ok(empty_ok())
}

/// Streams `body` into `writer` and completes the file.
async fn write_body(mut writer: FileWriter, body: Body) -> Result<(), GatewayError> {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| GatewayError::Body(e.to_string()))?;
        writer
            .write_all(&chunk)
            .await
            .map_err(GatewayError::from_write)?;
    }
    writer.shutdown().await.map_err(GatewayError::from_write)
}

/// `LISTSTATUS`: a directory's entries; a file lists as itself.
/// `LISTSTATUS_BATCH`: one page of the listing after `startAfter`. `remainingEntries` is 0
/// exactly when the listing is done, which is what clients go on by; before that it is the
/// directory's children less this page: exact for the first page, an upper bound after
/// (raftfs lists by name after a name and keeps no rank of names).
async fn list_status_batch(
    client: &Client,
    path: &str,
    start_after: &str,
    limit: u32,
) -> Result<Response, GatewayError> {
    let page = match client.list_page(path, start_after, limit).await {
        Ok(page) => page,
        Err(e) if e.is(ErrorKind::NotADirectory) && start_after.is_empty() => {
            let f = client.stat(path).await?;
            return Ok(json_ok(status::list_status_batch(&[(f, "")], 0)));
        }
        Err(e) => return Err(e.into()),
    };
    let remaining = if page.has_more {
        let listed = page.entries.len() as u64;
        client
            .stat(path)
            .await?
            .children
            .saturating_sub(listed)
            .max(1)
    } else {
        0
    };
    let entries: Vec<_> = page
        .entries
        .iter()
        .map(|e| (e.clone(), e.name.as_str()))
        .collect();
    Ok(json_ok(status::list_status_batch(&entries, remaining)))
}

async fn list_status(client: &Client, path: &str, limit: u32) -> Result<Response, GatewayError> {
    let mut entries = Vec::new();
    loop {
        let after = entries
            .last()
            .map(|e: &raftfs_client::FileStatus| e.name.clone())
            .unwrap_or_default();
        match client.list_page(path, &after, limit).await {
            Ok(page) => {
                entries.extend(page.entries);
                if !page.has_more {
                    break;
                }
            }
            Err(e) if e.is(ErrorKind::NotADirectory) && entries.is_empty() => {
                let f = client.stat(path).await?;
                return Ok(json_ok(json!({
                    "FileStatuses": { "FileStatus": [status::file_status(&f, "")] }
                })));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json_ok(status::list_status(&entries)))
}

/// `MKDIRS`: true once the directory exists (it may have before); a file in the way is
/// refused.
async fn mkdirs(
    client: &Client,
    path: &str,
    permission: Option<u32>,
) -> Result<Response, GatewayError> {
    // The mode goes with the creation: a directory that exists keeps its own.
    match client
        .mkdir_with_permission(path, true, permission.unwrap_or(0))
        .await
    {
        Ok(_) => Ok(boolean(true)),
        Err(e) if e.is(ErrorKind::AlreadyExists) => {
            let f = client.stat(path).await?;
            if f.kind == FileKind::Directory {
                Ok(boolean(true))
            } else {
                Err(e.into())
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// `RENAME`, with HDFS's rules: onto an existing directory moves the source into it, and a
/// rename that cannot be done for the paths' state (no source, the destination taken, no
/// parent) answers false rather than an error.
async fn rename(client: &Client, src: &str, destination: &str) -> Result<Response, GatewayError> {
    if !destination.starts_with('/') {
        return Err(GatewayError::BadRequest(format!(
            "destination {destination:?} is not an absolute path"
        )));
    }
    let dst = match client.stat(destination).await {
        Ok(d) if d.kind == FileKind::Directory => {
            let name = src.rsplit('/').next().unwrap_or_default();
            format!("{}/{name}", destination.trim_end_matches('/'))
        }
        _ => destination.to_owned(),
    };
    match client.rename(src, &dst, false).await {
        Ok(_) => Ok(boolean(true)),
        Err(ClientError::Refused {
            kind: ErrorKind::NotFound | ErrorKind::AlreadyExists | ErrorKind::ParentNotFound,
            ..
        }) => Ok(boolean(false)),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE`: false when there was nothing to delete.
async fn delete(client: &Client, path: &str, recursive: bool) -> Result<Response, GatewayError> {
    match client.delete(path, recursive).await {
        Ok(()) => Ok(boolean(true)),
        Err(e) if e.is(ErrorKind::NotFound) => Ok(boolean(false)),
        Err(e) => Err(e.into()),
    }
}

async fn get_xattrs(
    client: &Client,
    path: &str,
    names: &[String],
    encoding: Encoding,
) -> Result<Response, GatewayError> {
    let found = client.get_xattrs(path, names).await?;
    if let Some(missing) = names.iter().find(|n| !found.iter().any(|(f, _)| f == *n)) {
        return Err(GatewayError::refused(
            ErrorKind::XattrNotFound,
            format!("At least one of the attributes provided was not found: {missing}"),
        ));
    }
    let list: Vec<Value> = found
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": request::encode_value(value, encoding) }))
        .collect();
    Ok(json_ok(json!({ "XAttrs": list })))
}

/// `SETXATTR` with its flag: `CREATE` only if absent, `REPLACE` only if present (a
/// compare-and-set on the value read), neither: either.
async fn set_xattr(
    client: &Client,
    path: &str,
    name: &str,
    value: &[u8],
    flag: XattrFlag,
) -> Result<(), GatewayError> {
    match flag {
        XattrFlag::Either => client.set_xattr(path, name, value, None).await?,
        XattrFlag::Create => client.set_xattr(path, name, value, Some(None)).await?,
        XattrFlag::Replace => {
            let now = client.get_xattrs(path, &[name.to_owned()]).await?;
            let Some((_, current)) = now.into_iter().find(|(n, _)| n == name) else {
                return Err(GatewayError::refused(
                    ErrorKind::XattrNotFound,
                    format!("XAttr: {name} does not exist"),
                ));
            };
            client
                .set_xattr(path, name, value, Some(Some(&current)))
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_from_the_url() {
        let uri: Uri = "/webhdfs/v1/a%20b/c%25?op=OPEN".parse().expect("uri");
        assert_eq!(fs_path(&uri).expect("path"), "/a b/c%");
        let uri: Uri = "/webhdfs/v1?op=LISTSTATUS".parse().expect("uri");
        assert_eq!(fs_path(&uri).expect("path"), "/");
        let uri: Uri = "/webhdfs/v1/%zz".parse().expect("uri");
        assert!(fs_path(&uri).is_err());
    }

    #[test]
    fn parents() {
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/a/b/"), Some("/a"));
        assert_eq!(parent_of("/"), None);
    }
}
