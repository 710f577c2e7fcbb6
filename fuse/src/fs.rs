//! The file system the kernel calls: each callback resolves its inode to a path, runs its
//! client calls on the runtime (so that a slow call holds up no other), and answers the
//! kernel from there. Every callback has a span with its operation and inode.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use raftfs_client::{Client, CreateOptions, FileKind, FileReader, FileStatus, FileWriter};
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

use crate::attrs::{self, Owners};
use crate::dir::{Cursor, DOTS};
use crate::error::{FsError, log_failure};
use crate::inodes::{Inodes, ROOT};
use crate::read::{Bytes, ReadAhead};
use crate::write::{Live, WriteOp, WriterHandle, replace_empty};

/// How the mount behaves.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// How long the kernel may keep an entry or its attributes without asking again: what
    /// another client changed shows after at most this long (this mount's own changes show
    /// at once).
    pub attr_ttl: Duration,
    /// Whether users other than the one who mounted may use the mount (`allow_other`). The
    /// kernel checks each caller against the modes, owners and groups raftfs keeps
    /// (`default_permissions`).
    pub allow_other: bool,
    /// Mounted read-only.
    pub read_only: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            attr_ttl: Duration::from_secs(1),
            allow_other: false,
            read_only: false,
        }
    }
}

/// An open file or directory.
#[derive(Debug)]
enum Open {
    File(OpenFile),
    Dir(tokio::sync::Mutex<Cursor>),
}

#[derive(Debug)]
struct OpenFile {
    ino: u64,
    path: String,
    /// Opened at the first read, and again when this handle wrote since.
    reader: tokio::sync::Mutex<Option<Arc<ReadAhead>>>,
    writer: Option<WriterHandle>,
}

impl OpenFile {
    fn new(ino: u64, path: String, writer: Option<WriterHandle>) -> Self {
        Self {
            ino,
            path,
            reader: tokio::sync::Mutex::new(None),
            writer,
        }
    }

    /// The reader of what the file holds now. A handle open for writing completes what it
    /// wrote first (raftfs readers see completed bytes), so that a read sees every write
    /// made through the same open file.
    async fn reader(&self, client: &Client) -> Result<Arc<ReadAhead>, FsError> {
        let mut reader = self.reader.lock().await;
        let written = match &self.writer {
            Some(w) => {
                w.complete()
                    .await
                    .map_err(|errno| FsError::refused(errno, "completing the file to read it"))?;
                Some(w.size.load(Ordering::Acquire))
            }
            None => None,
        };
        match &*reader {
            Some(r) if written.is_none_or(|n| n == r.len()) => Ok(r.clone()),
            _ => {
                let r = Arc::new(ReadAhead::new(FileReader::open(client, &self.path).await?));
                *reader = Some(r.clone());
                Ok(r)
            }
        }
    }
}

/// raftfs as the kernel sees it.
#[derive(Debug)]
pub struct RaftFs {
    inner: Arc<Inner>,
    rt: tokio::runtime::Handle,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    options: MountOptions,
    inodes: Mutex<Inodes>,
    owners: Owners,
    open: Mutex<HashMap<u64, Arc<Open>>>,
    next_fh: AtomicU64,
    /// Files this mount is writing, by inode: the handles writing them.
    writing: Mutex<HashMap<u64, Vec<WriterHandle>>>,
    /// The writer tasks running (an unmount waits for them).
    live: Arc<Live>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A kernel reply that can carry an errno.
trait Fail: Send + 'static {
    fn fail(self, errno: Errno);
}

macro_rules! fail {
    ($($t:ty),*) => {$(impl Fail for $t { fn fail(self, errno: Errno) { self.error(errno) } })*};
}
fail!(
    ReplyAttr,
    ReplyCreate,
    ReplyData,
    ReplyDirectory,
    ReplyDirectoryPlus,
    ReplyEmpty,
    ReplyEntry,
    ReplyOpen,
    ReplyStatfs,
    ReplyWrite,
    ReplyXattr
);

/// Attributes the kernel and `ls` ask every file for, which raftfs gives no meaning: SELinux
/// labels, file capabilities (asked before each write) and POSIX ACLs (raftfs has none).
/// The mount answers "none" itself rather than a call each; other `security.` and `system.`
/// names go to raftfs.
const PROBED: [&str; 4] = [
    "security.selinux",
    "security.capability",
    "system.posix_acl_access",
    "system.posix_acl_default",
];

/// The longest name raftfs takes, in bytes (HDFS's default too).
const MAX_NAME: usize = 255;

/// A name from the kernel as raftfs takes it (UTF-8).
fn name_of(name: &OsStr) -> Result<&str, FsError> {
    name.to_str()
        .ok_or_else(|| FsError::refused(Errno::EINVAL, "raftfs names are UTF-8"))
}

fn now_ms() -> u64 {
    attrs::millis(SystemTime::now())
}

fn time_ms(t: TimeOrNow) -> u64 {
    match t {
        TimeOrNow::SpecificTime(t) => attrs::millis(t),
        TimeOrNow::Now => now_ms(),
    }
}

impl RaftFs {
    pub fn new(client: Client, options: MountOptions, rt: tokio::runtime::Handle) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                options,
                inodes: Mutex::new(Inodes::new()),
                owners: Owners::default(),
                open: Mutex::new(HashMap::new()),
                next_fh: AtomicU64::new(1),
                writing: Mutex::new(HashMap::new()),
                live: Arc::new(Live::default()),
            }),
            rt,
        }
    }

    /// Runs `op` on the runtime and answers `reply` with what it returns.
    fn run<T, R, F>(
        &self,
        span: tracing::Span,
        reply: R,
        op: impl FnOnce(Arc<Inner>) -> F,
        answer: impl FnOnce(R, T) + Send + 'static,
    ) where
        R: Fail,
        T: Send + 'static,
        F: Future<Output = Result<T, FsError>> + Send + 'static,
    {
        let fut = op(self.inner.clone());
        self.rt.spawn(
            async move {
                match fut.await {
                    Ok(v) => answer(reply, v),
                    Err(e) => {
                        log_failure("refused", &e);
                        reply.fail(e.errno());
                    }
                }
            }
            .instrument(span),
        );
    }

    /// The writer tasks, which complete their files after an unmount.
    pub fn live(&self) -> Arc<Live> {
        self.inner.live.clone()
    }

    fn opened(&self, fh: u64) -> Option<Arc<Open>> {
        lock(&self.inner.open).get(&fh).cloned()
    }
}

fn span(op: &'static str, ino: INodeNo) -> tracing::Span {
    tracing::debug_span!("fuse", op, ino = ino.0)
}

impl Inner {
    fn path(&self, ino: INodeNo) -> Result<String, FsError> {
        lock(&self.inodes)
            .path(ino.0)
            .ok_or_else(|| FsError::stale(ino.0))
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<String, FsError> {
        let name = name_of(name)?;
        if name.len() > MAX_NAME {
            return Err(FsError::refused(
                Errno::ENAMETOOLONG,
                format!("a name of {} bytes (at most {MAX_NAME})", name.len()),
            ));
        }
        lock(&self.inodes)
            .child_path(parent.0, name)
            .ok_or_else(|| FsError::stale(parent.0))
    }

    /// The attributes of `status` as inode `ino`, with the length this mount has written
    /// when it is writing the file.
    fn attr(&self, ino: u64, status: &FileStatus) -> FileAttr {
        let size = lock(&self.writing)
            .get(&ino)
            .and_then(|ws| ws.iter().map(|w| w.size.load(Ordering::Acquire)).max());
        attrs::attr(ino, status, size, &self.owners)
    }

    /// `status` of an object just made at `path` for local user `uid`: owned by that user.
    /// raftfs makes it the mount's user's; a mount others may use (`allow_other`, mounted
    /// by the superuser) hands it to its maker, so that they may change its mode.
    async fn owned_by(
        &self,
        path: &str,
        status: FileStatus,
        uid: u32,
    ) -> Result<FileStatus, FsError> {
        if self.owners.uid(&status.owner) == uid {
            return Ok(status);
        }
        let name = self.owners.user_name(uid);
        Ok(self.client.set_owner(path, &name, "").await?)
    }

    /// How long the kernel may keep `ino`'s attributes: not at all while this mount writes
    /// it (closing it completes it, which sets its length and modification time).
    fn ttl(&self, ino: u64) -> Duration {
        if lock(&self.writing).contains_key(&ino) {
            Duration::ZERO
        } else {
            self.options.attr_ttl
        }
    }

    /// The kernel learns `name` in `parent` as `status`: its inode and attributes.
    fn entry(&self, parent: INodeNo, name: &str, status: &FileStatus) -> FileAttr {
        let ino = lock(&self.inodes).remember(parent.0, name, status.id);
        self.attr(ino, status)
    }

    fn register(&self, open: Open) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        if let Open::File(OpenFile {
            ino,
            writer: Some(w),
            ..
        }) = &open
        {
            lock(&self.writing).entry(*ino).or_default().push(w.clone());
        }
        lock(&self.open).insert(fh, Arc::new(open));
        fh
    }

    fn read_only(&self) -> Result<(), FsError> {
        if self.options.read_only {
            return Err(FsError::refused(Errno::EROFS, "the mount is read-only"));
        }
        Ok(())
    }

    /// Creates `path` for writing (replacing what is there when `overwrite`), and its
    /// status: the writer is open and holds the file's lease.
    async fn create(
        &self,
        path: &str,
        opts: CreateOptions,
    ) -> Result<(FileWriter, FileStatus), FsError> {
        let writer = FileWriter::create(&self.client, path, &opts).await?;
        let status = self.client.stat(path).await?;
        let status = self.with_mode(path, status, opts.permission).await?;
        Ok((writer, status))
    }

    /// `status` of an object just made at `path` with mode `perm`: the caller's umask is
    /// applied already (by the kernel), so raftfs's own (HDFS's `fs.permissions.umask-mode`,
    /// and its default for mode 0) is undone.
    async fn with_mode(
        &self,
        path: &str,
        status: FileStatus,
        perm: u32,
    ) -> Result<FileStatus, FsError> {
        if status.permission & 0o7777 == perm {
            return Ok(status);
        }
        Ok(self.client.set_permission(path, perm).await?)
    }

    /// Sets `path`'s length to `size`: a no-op at its length, an empty file (replacing it,
    /// with its mode and policy) at 0; other lengths cannot be set (files are written front
    /// to back).
    async fn truncate(
        &self,
        ino: u64,
        fh: Option<FileHandle>,
        path: &str,
        size: u64,
    ) -> Result<(), FsError> {
        let writer = fh
            .and_then(|fh| lock(&self.open).get(&fh.0).cloned())
            .and_then(|open| match &*open {
                Open::File(f) => f.writer.clone(),
                Open::Dir(_) => None,
            });
        if let Some(w) = writer {
            let len = w.size.load(Ordering::Acquire);
            if len == size {
                return Ok(());
            }
            if size != 0 {
                return Err(FsError::refused(
                    Errno::EOPNOTSUPP,
                    format!(
                        "{path}: truncating to {size} bytes (of {len}): raftfs files are only emptied"
                    ),
                ));
            }
            let id = w
                .empty()
                .await
                .map_err(|errno| FsError::refused(errno, "emptying the file"))?;
            lock(&self.inodes).set_id(ino, id);
            return Ok(());
        }
        let status = self.client.stat(path).await?;
        if status.length == size {
            return Ok(());
        }
        if size != 0 {
            return Err(FsError::refused(
                Errno::EOPNOTSUPP,
                format!(
                    "{path}: truncating to {size} bytes (of {}): raftfs files are \
                     only emptied, or written on at their end",
                    status.length
                ),
            ));
        }
        let (mut writer, fresh) = replace_empty(&self.client, path, &status).await?;
        writer.shutdown().await.map_err(FsError::from_write)?;
        lock(&self.inodes).set_id(ino, fresh.id);
        Ok(())
    }
}

/// The children of open directory `open` from the kernel's `offset` on (`.` and `..` are
/// the caller's), each with its offset; and `inner` back, for the answer.
async fn list(
    inner: Arc<Inner>,
    open: Option<Arc<Open>>,
    offset: u64,
) -> Result<(Arc<Inner>, Vec<(u64, FileStatus)>), FsError> {
    let Some(Open::Dir(cursor)) = open.as_deref() else {
        return Err(FsError::refused(Errno::EBADF, "not an open directory"));
    };
    let from = offset.saturating_sub(DOTS);
    let entries = cursor.lock().await.from(&inner.client, from).await?;
    Ok((inner, entries))
}

fn kind_of(status: &FileStatus) -> FileType {
    match status.kind {
        FileKind::Directory => FileType::Directory,
        FileKind::File => FileType::RegularFile,
        FileKind::Symlink => FileType::Symlink,
    }
}

/// The reply to `getxattr`/`listxattr`: the size asked for with 0, else the bytes when
/// they fit (`ERANGE` when not).
fn xattr_reply(reply: ReplyXattr, size: u32, bytes: &[u8]) {
    let Ok(len) = u32::try_from(bytes.len()) else {
        return reply.error(Errno::E2BIG);
    };
    if size == 0 {
        reply.size(len);
    } else if len > size {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(bytes);
    }
}

impl Filesystem for RaftFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Listings with attributes (one call for `ls -l`), and O_TRUNC handled by open.
        let wanted = InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_ATOMIC_O_TRUNC;
        if let Err(missing) = config.add_capabilities(wanted) {
            tracing::info!("the kernel lacks {missing:?}");
        }
        let _ = config.set_max_write(1 << 20);
        // As much readahead as the kernel takes, up to 1 MiB (its pieces' size).
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let path = self.inner.child(parent, name);
        let name = name.to_string_lossy().into_owned();
        self.run(
            span("lookup", parent),
            reply,
            |inner| async move {
                let status = inner.client.stat(&path?).await?;
                let attr = inner.entry(parent, &name, &status);
                Ok((attr, inner.ttl(attr.ino.0)))
            },
            |reply, (attr, ttl): (FileAttr, Duration)| reply.entry(&ttl, &attr, Generation(0)),
        );
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.inner.inodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let path = self.inner.path(ino);
        self.run(
            span("getattr", ino),
            reply,
            |inner| async move {
                let status = inner.client.stat(&path?).await?;
                Ok((inner.attr(ino.0, &status), inner.ttl(ino.0)))
            },
            |reply, (attr, ttl): (FileAttr, Duration)| reply.attr(&ttl, &attr),
        );
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let path = self.inner.path(ino);
        self.run(
            span("setattr", ino),
            reply,
            |inner| async move {
                let path = path?;
                inner.read_only()?;
                let c = &inner.client;
                if let Some(size) = size {
                    inner.truncate(ino.0, fh, &path, size).await?;
                }
                if let Some(mode) = mode {
                    c.set_permission(&path, mode & 0o7777).await?;
                }
                if uid.is_some() || gid.is_some() {
                    // An empty name leaves that part as it is.
                    let owner = uid.map(|u| inner.owners.user_name(u)).unwrap_or_default();
                    let group = gid.map(|g| inner.owners.group_name(g)).unwrap_or_default();
                    c.set_owner(&path, &owner, &group).await?;
                }
                if atime.is_some() || mtime.is_some() {
                    let (mtime, atime) = (mtime.map(time_ms), atime.map(time_ms));
                    let writer = lock(&inner.writing)
                        .get(&ino.0)
                        .and_then(|ws| ws.last().cloned());
                    match writer {
                        // Completing the file sets its modification time: times set while
                        // it is written (`cp -p` sets them before closing) are set after.
                        Some(w) => w
                            .set_times_after_close(mtime, atime)
                            .await
                            .map_err(|errno| FsError::refused(errno, "setting times"))?,
                        None => {
                            c.set_times(&path, mtime, atime).await?;
                        }
                    }
                }
                let status = c.stat(&path).await?;
                Ok((inner.attr(ino.0, &status), inner.ttl(ino.0)))
            },
            |reply, (attr, ttl): (FileAttr, Duration)| reply.attr(&ttl, &attr),
        );
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let path = self.inner.path(ino);
        self.run(
            span("readlink", ino),
            reply,
            |inner| async move {
                let status = inner.client.stat(&path?).await?;
                if status.kind != FileKind::Symlink {
                    return Err(FsError::refused(Errno::EINVAL, "not a symbolic link"));
                }
                Ok(status.symlink_target)
            },
            |reply, target: String| reply.data(target.as_bytes()),
        );
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        self.make(
            "mknod",
            req,
            parent,
            name,
            reply,
            move |inner, path| async move {
                if mode & libc::S_IFMT != libc::S_IFREG {
                    // mknod(2): EPERM where the file system does not hold the type.
                    return Err(FsError::refused(
                        Errno::EPERM,
                        "raftfs holds files, directories and symbolic links only",
                    ));
                }
                let opts = CreateOptions {
                    permission: mode & !umask & 0o7777,
                    ..CreateOptions::default()
                };
                let (mut writer, status) = inner.create(&path, opts).await?;
                writer.shutdown().await.map_err(FsError::from_write)?;
                Ok(status)
            },
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.make(
            "mkdir",
            req,
            parent,
            name,
            reply,
            move |inner, path| async move {
                let perm = mode & !umask & 0o7777;
                let status = inner
                    .client
                    .mkdir_with_permission(&path, false, perm)
                    .await?;
                inner.with_mode(&path, status, perm).await
            },
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove("unlink", parent, name, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove("rmdir", parent, name, reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let target = target.to_str().map(str::to_owned);
        self.make(
            "symlink",
            req,
            parent,
            link_name,
            reply,
            |inner, path| async move {
                let target = target
                    .ok_or_else(|| FsError::refused(Errno::EINVAL, "raftfs targets are UTF-8"))?;
                Ok(inner.client.symlink(&path, &target).await?)
            },
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let src = self.inner.child(parent, name);
        let dst = self.inner.child(newparent, newname);
        let (name, newname) = (
            name.to_string_lossy().into_owned(),
            newname.to_string_lossy().into_owned(),
        );
        self.run(
            span("rename", parent),
            reply,
            move |inner| async move {
                let (src, dst) = (src?, dst?);
                inner.read_only()?;
                if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                    return Err(FsError::refused(
                        Errno::EINVAL,
                        "raftfs does not exchange two paths",
                    ));
                }
                let overwrite = !flags.contains(RenameFlags::RENAME_NOREPLACE);
                inner.client.rename(&src, &dst, overwrite).await?;
                lock(&inner.inodes).renamed(parent.0, &name, newparent.0, &newname);
                Ok(())
            },
            |reply, ()| reply.ok(),
        );
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        // link(2): EPERM where the file system does not support hard links (HDFS has none).
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let path = self.inner.path(ino);
        let rt = self.rt.clone();
        self.run(
            span("open", ino),
            reply,
            move |inner| async move {
                let path = path?;
                let writer = match flags.acc_mode() {
                    OpenAccMode::O_RDONLY => {
                        // The file as it is now: read on from the same file even if it is
                        // renamed, or another takes its name.
                        let reader = FileReader::open(&inner.client, &path).await?;
                        let file = OpenFile::new(ino.0, path, None);
                        *file.reader.lock().await = Some(Arc::new(ReadAhead::new(reader)));
                        return Ok(inner.register(Open::File(file)));
                    }
                    OpenAccMode::O_WRONLY | OpenAccMode::O_RDWR => {
                        inner.read_only()?;
                        let status = inner.client.stat(&path).await?;
                        let (writer, size) = if flags.0 & libc::O_TRUNC != 0 && status.length > 0 {
                            let (w, fresh) = replace_empty(&inner.client, &path, &status).await?;
                            lock(&inner.inodes).set_id(ino.0, fresh.id);
                            (Some(w), 0)
                        } else {
                            (None, status.length)
                        };
                        let client = inner.client.clone();
                        Some(WriterHandle::start(
                            &rt,
                            &inner.live,
                            client,
                            path.clone(),
                            size,
                            writer,
                        ))
                    }
                };
                Ok(inner.register(Open::File(OpenFile::new(ino.0, path, writer))))
            },
            |reply, fh| reply.opened(FileHandle(fh), FopenFlags::empty()),
        );
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let open = self.opened(fh.0);
        self.run(
            span("read", ino),
            reply,
            |inner| async move {
                let Some(Open::File(file)) = open.as_deref() else {
                    return Err(FsError::refused(Errno::EBADF, "not an open file"));
                };
                file.reader(&inner.client)
                    .await?
                    .read(offset, size)
                    .await
                    .map_err(|e| FsError::refused(e.errno(), e.to_string()))
            },
            |reply, bytes: Bytes| reply.data(bytes.as_slice()),
        );
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.opened(fh.0).as_deref() {
            Some(Open::File(OpenFile {
                writer: Some(w), ..
            })) => w.write(offset, data, reply),
            _ => reply.error(Errno::EBADF),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.opened(fh.0).as_deref() {
            Some(Open::File(OpenFile {
                writer: Some(w), ..
            })) => w.send(WriteOp::Close { reply }),
            _ => reply.ok(),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let open = lock(&self.inner.open).remove(&fh.0);
        match open.as_deref() {
            Some(Open::File(OpenFile {
                ino,
                writer: Some(w),
                ..
            })) => {
                let mut writing = lock(&self.inner.writing);
                if let Some(ws) = writing.get_mut(ino) {
                    ws.retain(|other| !Arc::ptr_eq(&other.size, &w.size));
                    if ws.is_empty() {
                        writing.remove(ino);
                    }
                }
                drop(writing);
                w.send(WriteOp::Release { reply });
            }
            _ => reply.ok(),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.flush(_req, _ino, fh, LockOwner(0), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.inner.path(ino) {
            Ok(path) => {
                let fh = self
                    .inner
                    .register(Open::Dir(tokio::sync::Mutex::new(Cursor::new(path))));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e.errno()),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let open = self.opened(fh.0);
        let parent = self.parent_of(ino);
        self.run(
            span("readdir", ino),
            reply,
            |inner| list(inner, open, offset),
            move |mut reply, (inner, entries): (Arc<Inner>, Vec<(u64, FileStatus)>)| {
                for (off, ino, kind, name) in dots(ino, parent, offset) {
                    if reply.add(INodeNo(ino), off, kind, name) {
                        return reply.ok();
                    }
                }
                let inodes = lock(&inner.inodes);
                for (off, status) in entries {
                    // Only a number the kernel was given names the inode; others are a hint
                    // (never 0, which readdir(3) skips).
                    let child = inodes.peek(ino.0, &status.name).unwrap_or(u64::MAX);
                    if reply.add(INodeNo(child), off, kind_of(&status), &status.name) {
                        break;
                    }
                }
                drop(inodes);
                reply.ok();
            },
        );
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let open = self.opened(fh.0);
        let parent = self.parent_of(ino);
        let ttl = self.inner.options.attr_ttl;
        self.run(
            span("readdirplus", ino),
            reply,
            |inner| list(inner, open, offset),
            move |mut reply, (inner, entries): (Arc<Inner>, Vec<(u64, FileStatus)>)| {
                let dir_attr = attrs::directory(ino.0);
                for (off, ino, _kind, name) in dots(ino, parent, offset) {
                    // The kernel takes no lookup of `.` and `..`.
                    let attr = FileAttr {
                        ino: INodeNo(ino),
                        ..dir_attr
                    };
                    if reply.add(INodeNo(ino), off, name, &ttl, &attr, Generation(0)) {
                        return reply.ok();
                    }
                }
                for (off, status) in entries {
                    let attr = inner.entry(ino, &status.name, &status);
                    if reply.add(attr.ino, off, &status.name, &ttl, &attr, Generation(0)) {
                        // Not sent: the kernel holds no lookup of it.
                        lock(&inner.inodes).forget(attr.ino.0, 1);
                        break;
                    }
                }
                reply.ok();
            },
        );
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.inner.open).remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.run(
            span("statfs", ino),
            reply,
            |inner| async move {
                let (_, servers) = inner.client.block_servers().await?;
                let live = servers.iter().filter(|s| s.live);
                let (capacity, available) = live.fold((0u64, 0u64), |(c, a), s| {
                    (c.saturating_add(s.capacity), a.saturating_add(s.available))
                });
                Ok((capacity, available))
            },
            |reply, (capacity, available): (u64, u64)| {
                let block = u64::from(attrs::IO_SIZE);
                reply.statfs(
                    capacity / block,
                    available / block,
                    available / block,
                    0,
                    0,
                    attrs::IO_SIZE,
                    255,
                    attrs::IO_SIZE,
                );
            },
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let path = self.inner.path(ino);
        let name = name_of(name).map(str::to_owned);
        let value = value.to_vec();
        self.run(
            span("setxattr", ino),
            reply,
            move |inner| async move {
                let (path, name) = (path?, name?);
                inner.read_only()?;
                let c = &inner.client;
                if flags & libc::XATTR_CREATE != 0 {
                    c.set_xattr(&path, &name, &value, Some(None)).await?;
                } else if flags & libc::XATTR_REPLACE != 0 {
                    // Replaced only if it is there, and still what was read.
                    let old = c.get_xattrs(&path, std::slice::from_ref(&name)).await?;
                    let old = old.into_iter().next().map(|(_, v)| v).unwrap_or_default();
                    c.set_xattr(&path, &name, &value, Some(Some(&old))).await?;
                } else {
                    c.set_xattr(&path, &name, &value, None).await?;
                }
                Ok(())
            },
            |reply, ()| reply.ok(),
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if name.to_str().is_some_and(|n| PROBED.contains(&n)) {
            return reply.error(Errno::ENODATA);
        }
        let path = self.inner.path(ino);
        let name = name_of(name).map(str::to_owned);
        self.run(
            span("getxattr", ino),
            reply,
            |inner| async move {
                let (path, name) = (path?, name?);
                let found = inner.client.get_xattrs(&path, &[name]).await?;
                Ok(found.into_iter().next().map(|(_, v)| v).unwrap_or_default())
            },
            move |reply, value: Vec<u8>| xattr_reply(reply, size, &value),
        );
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let path = self.inner.path(ino);
        self.run(
            span("listxattr", ino),
            reply,
            |inner| async move {
                let all = inner.client.get_xattrs(&path?, &[]).await?;
                let mut names = Vec::new();
                for (name, _) in all {
                    names.extend_from_slice(name.as_bytes());
                    names.push(0);
                }
                Ok(names)
            },
            move |reply, names: Vec<u8>| xattr_reply(reply, size, &names),
        );
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let path = self.inner.path(ino);
        let name = name_of(name).map(str::to_owned);
        self.run(
            span("removexattr", ino),
            reply,
            |inner| async move {
                let (path, name) = (path?, name?);
                inner.read_only()?;
                inner.client.remove_xattr(&path, &name).await?;
                Ok(())
            },
            |reply, ()| reply.ok(),
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // The kernel checks permissions itself (`default_permissions`).
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let uid = req.uid();
        let path = self.inner.child(parent, name);
        let name = name.to_string_lossy().into_owned();
        let rt = self.rt.clone();
        self.run(
            span("create", parent),
            reply,
            move |inner| async move {
                let path = path?;
                inner.read_only()?;
                if mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(FsError::refused(Errno::EPERM, "only files are created"));
                }
                let opts = CreateOptions {
                    overwrite: flags & libc::O_EXCL == 0 && flags & libc::O_TRUNC != 0,
                    permission: mode & !umask & 0o7777,
                    ..CreateOptions::default()
                };
                let (writer, status) = inner.create(&path, opts).await?;
                let status = inner.owned_by(&path, status, uid).await?;
                let client = inner.client.clone();
                let w =
                    WriterHandle::start(&rt, &inner.live, client, path.clone(), 0, Some(writer));
                let attr = inner.entry(parent, &name, &status);
                let fh = inner.register(Open::File(OpenFile::new(attr.ino.0, path, Some(w))));
                Ok((attr, fh))
            },
            |reply, (attr, fh): (FileAttr, u64)| {
                // Written now: its attributes are not kept (see `Inner::ttl`).
                let ttl = Duration::ZERO;
                reply.created(
                    &ttl,
                    &attr,
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                );
            },
        );
    }
}

impl RaftFs {
    /// Makes `name` in `parent` with `make` (given its path) and answers with the new entry,
    /// handed to the caller who asked (`Inner::owned_by`).
    fn make<F>(
        &self,
        op: &'static str,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEntry,
        make: impl FnOnce(Arc<Inner>, String) -> F + Send + 'static,
    ) where
        F: Future<Output = Result<FileStatus, FsError>> + Send + 'static,
    {
        let uid = req.uid();
        let path = self.inner.child(parent, name);
        let name = name.to_string_lossy().into_owned();
        let ttl = self.inner.options.attr_ttl;
        self.run(
            span(op, parent),
            reply,
            |inner| async move {
                let path = path?;
                inner.read_only()?;
                let status = make(inner.clone(), path.clone()).await?;
                let status = inner.owned_by(&path, status, uid).await?;
                Ok(inner.entry(parent, &name, &status))
            },
            move |reply, attr: FileAttr| reply.entry(&ttl, &attr, Generation(0)),
        );
    }

    fn remove(&self, op: &'static str, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let path = self.inner.child(parent, name);
        let name = name.to_string_lossy().into_owned();
        self.run(
            span(op, parent),
            reply,
            |inner| async move {
                let path = path?;
                inner.read_only()?;
                inner.client.delete(&path, false).await?;
                lock(&inner.inodes).unlinked(parent.0, &name);
                Ok(())
            },
            |reply, ()| reply.ok(),
        );
    }

    /// The inode of `ino`'s parent directory (the root's is the root).
    fn parent_of(&self, ino: INodeNo) -> u64 {
        lock(&self.inner.inodes).parent(ino.0).unwrap_or(ROOT)
    }
}

/// `.` and `..` from `offset` on: (offset after it, inode, kind, name).
fn dots(ino: INodeNo, parent: u64, offset: u64) -> Vec<(u64, u64, FileType, &'static str)> {
    [(1, ino.0, "."), (2, parent, "..")]
        .into_iter()
        .filter(|(off, _, _)| *off > offset)
        .map(|(off, ino, name)| (off, ino, FileType::Directory, name))
        .collect()
}
