//! Writes of an open file. raftfs files are written once, front to back (HDFS's model): a
//! write at the file's end goes into the client's `FileWriter`, any other write is refused
//! with `EOPNOTSUPP` and a message naming the offsets. Closing the file (`flush`, which
//! `close(2)` waits for, and `fsync`) completes it, so that a file closed through the mount
//! is whole for every reader at once; a later write at the end reopens it for appending.
//!
//! Each open file's writes run in order on one task that owns its writer; the kernel's
//! callbacks hand them over through a bounded channel. A write is answered once it is queued
//! (write-behind, as a local disk answers once the bytes are in its page cache), so that the
//! kernel's next piece travels while the writer sends the last; the queue's bound holds a
//! fast writer back. A write that fails after its answer fails every later write of the
//! handle, and the `close` (or `fsync`) that ends it: nothing is reported done that was not.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use fuser::{Errno, ReplyEmpty, ReplyWrite};
use raftfs_client::{Client, CreateOptions, FileStatus, FileWriter};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::error::{FsError, log_failure};

/// Writes queued for one file's writer task (the kernel's pieces are at most 1 MiB).
const QUEUED: usize = 8;

/// What the kernel asks of an open file's writer.
#[derive(Debug)]
pub enum WriteOp {
    /// Bytes at `offset`, answered already.
    Write { offset: u64, data: Vec<u8> },
    /// `flush` or `fsync`: the file completed.
    Close { reply: ReplyEmpty },
    /// `release`: completed if not yet, and the task ends.
    Release { reply: ReplyEmpty },
    /// A read through the same open file: what was written is completed first, so that the
    /// read sees it.
    Complete {
        done: oneshot::Sender<Result<(), Errno>>,
    },
    /// `ftruncate(fd, 0)`: the file replaced by an empty one, written on from its start;
    /// the new file's inode id.
    Empty {
        done: oneshot::Sender<Result<u64, Errno>>,
    },
    /// Times to set once the file is complete (completing it sets the modification time).
    Times {
        mtime_ms: Option<u64>,
        atime_ms: Option<u64>,
        done: oneshot::Sender<Result<(), Errno>>,
    },
}

/// The writer tasks still running, which an unmount waits for (they complete their files).
#[derive(Debug, Default)]
pub struct Live {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Live {
    /// Waits until no writer task runs, or `limit` passes; how many still run.
    pub async fn wait(&self, limit: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the count is read, so that a task ending in between wakes it.
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let n = self.count.load(Ordering::Acquire);
            if n == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.count.load(Ordering::Acquire);
            }
        }
    }
}

/// One running writer task, counted while it lives.
struct Running(Arc<Live>);

impl Running {
    fn new(live: Arc<Live>) -> Self {
        live.count.fetch_add(1, Ordering::AcqRel);
        Self(live)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.idle.notify_waiters();
    }
}

/// The kernel's side of an open file's writer task.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    ops: mpsc::Sender<WriteOp>,
    /// The file's length as written through this handle, queued writes included (what
    /// `stat` shows meanwhile).
    pub size: Arc<AtomicU64>,
    /// The errno of a write that failed after it was answered (0: none).
    failed: Arc<AtomicI32>,
    rt: tokio::runtime::Handle,
}

impl WriterHandle {
    /// Starts the task of a file at `path` of length `size`, with `writer` when it is open
    /// for writing already (just created or truncated).
    pub fn start(
        rt: &tokio::runtime::Handle,
        live: &Arc<Live>,
        client: Client,
        path: String,
        size: u64,
        writer: Option<FileWriter>,
    ) -> Self {
        let (ops, rx) = mpsc::channel(QUEUED);
        let failed = Arc::new(AtomicI32::new(0));
        let task = Writing {
            client,
            span: tracing::info_span!("fuse_write", path = %path),
            path,
            writer,
            end: size,
            failed: failed.clone(),
            times: None,
            _running: Running::new(live.clone()),
        };
        rt.spawn(task.run(rx));
        Self {
            ops,
            size: Arc::new(AtomicU64::new(size)),
            failed,
            rt: rt.clone(),
        }
    }

    /// A write from the kernel, checked and queued in the order it came, and answered once
    /// queued. Called from the session's thread (one: the kernel's order is kept).
    pub fn write(&self, offset: u64, data: &[u8], reply: ReplyWrite) {
        if let Some(errno) = self.failure() {
            return reply.error(errno);
        }
        let end = self.size.load(Ordering::Acquire);
        if offset != end {
            let e = FsError::refused(
                Errno::EOPNOTSUPP,
                format!(
                    "a write at offset {offset}, which is not the file's end ({end}): \
                     raftfs files are written front to back"
                ),
            );
            log_failure("write", &e);
            return reply.error(e.errno());
        }
        let Ok(len) = u32::try_from(data.len()) else {
            return reply.error(Errno::EINVAL);
        };
        self.size.store(end + u64::from(len), Ordering::Release);
        let op = WriteOp::Write {
            offset,
            data: data.to_vec(),
        };
        match self.ops.try_send(op) {
            Ok(()) => reply.written(len),
            // The queue is full: answered once there is room (the kernel sends this file's
            // next piece only after the answer), without holding up the session's thread.
            Err(mpsc::error::TrySendError::Full(op)) => {
                let ops = self.ops.clone();
                self.rt.spawn(async move {
                    match ops.send(op).await {
                        Ok(()) => reply.written(len),
                        Err(_) => reply.error(Errno::EIO),
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => reply.error(Errno::EIO),
        }
    }

    fn failure(&self) -> Option<Errno> {
        match self.failed.load(Ordering::Acquire) {
            0 => None,
            errno => Some(Errno::from_i32(errno)),
        }
    }

    /// Hands a `flush`, `fsync` or `release` to the task, after the writes queued before it.
    /// Called from the session's thread, never from the runtime's.
    pub fn send(&self, op: WriteOp) {
        if let Err(mpsc::error::SendError(op)) = self.ops.blocking_send(op) {
            // The task is gone (the runtime is shutting down).
            match op {
                WriteOp::Write { .. } => {}
                WriteOp::Close { reply } | WriteOp::Release { reply } => reply.error(Errno::EIO),
                WriteOp::Complete { done } => {
                    let _ = done.send(Err(Errno::EIO));
                }
                WriteOp::Empty { done } => {
                    let _ = done.send(Err(Errno::EIO));
                }
                WriteOp::Times { done, .. } => {
                    let _ = done.send(Err(Errno::EIO));
                }
            }
        }
    }

    /// Sets the file's times once it is complete (at once if it is).
    pub async fn set_times_after_close(
        &self,
        mtime_ms: Option<u64>,
        atime_ms: Option<u64>,
    ) -> Result<(), Errno> {
        let (done, result) = oneshot::channel();
        self.ops
            .send(WriteOp::Times {
                mtime_ms,
                atime_ms,
                done,
            })
            .await
            .map_err(|_| Errno::EIO)?;
        result.await.map_err(|_| Errno::EIO)?
    }

    /// Replaces the file by an empty one, written on through this handle.
    pub async fn empty(&self) -> Result<u64, Errno> {
        let (done, result) = oneshot::channel();
        self.ops
            .send(WriteOp::Empty { done })
            .await
            .map_err(|_| Errno::EIO)?;
        let id = result.await.map_err(|_| Errno::EIO)??;
        self.size.store(0, Ordering::Release);
        Ok(id)
    }

    /// Completes what was written (from the runtime: a read waits for it).
    pub async fn complete(&self) -> Result<(), Errno> {
        let (done, result) = oneshot::channel();
        self.ops
            .send(WriteOp::Complete { done })
            .await
            .map_err(|_| Errno::EIO)?;
        result.await.map_err(|_| Errno::EIO)?
    }
}

struct Writing {
    client: Client,
    path: String,
    span: tracing::Span,
    writer: Option<FileWriter>,
    /// The file's length as the writer has it.
    end: u64,
    /// Why a write failed (0: none): every later write, and every close, fails the same way.
    failed: Arc<AtomicI32>,
    /// Times to set after the file is completed: (mtime, atime).
    times: Option<(Option<u64>, Option<u64>)>,
    _running: Running,
}

impl Writing {
    async fn run(mut self, mut ops: mpsc::Receiver<WriteOp>) {
        let span = self.span.clone();
        async move {
            while let Some(op) = ops.recv().await {
                match op {
                    WriteOp::Write { offset, data } => {
                        if let Err(e) = self.write(offset, &data).await {
                            self.fail("write", &e);
                        }
                    }
                    WriteOp::Close { reply } => match self.close().await {
                        Ok(()) => reply.ok(),
                        Err(e) => reply.error(self.fail("close", &e)),
                    },
                    WriteOp::Complete { done } => {
                        let r = self.close().await.map_err(|e| self.fail("complete", &e));
                        let _ = done.send(r);
                    }
                    WriteOp::Empty { done } => {
                        let r = self.empty().await.map_err(|e| self.fail("truncate", &e));
                        let _ = done.send(r);
                    }
                    WriteOp::Times {
                        mtime_ms,
                        atime_ms,
                        done,
                    } => {
                        let r = self.times(mtime_ms, atime_ms).await;
                        let _ = done.send(r.map_err(|e| self.fail("set times", &e)));
                    }
                    WriteOp::Release { reply } => {
                        match self.close().await {
                            Ok(()) => reply.ok(),
                            Err(e) => reply.error(self.fail("release", &e)),
                        }
                        return;
                    }
                }
            }
            // The kernel went away without a release (an unmount): complete what was written.
            if let Err(e) = self.close().await {
                self.fail("close at unmount", &e);
            }
        }
        .instrument(span)
        .await;
    }

    /// Records a failure (the first one stays) and logs it; its errno.
    fn fail(&mut self, what: &str, e: &FsError) -> Errno {
        log_failure(what, e);
        let errno = e.errno();
        let _ = self
            .failed
            .compare_exchange(0, errno.code(), Ordering::AcqRel, Ordering::Acquire);
        errno
    }

    /// The failure recorded, as an error.
    fn failure(&self) -> Result<(), FsError> {
        match self.failed.load(Ordering::Acquire) {
            0 => Ok(()),
            errno => Err(FsError::refused(
                Errno::from_i32(errno),
                format!("{}: an earlier write of this file failed", self.path),
            )),
        }
    }

    async fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), FsError> {
        self.failure()?;
        if offset != self.end {
            // The callback checked against what was queued: this cannot happen unless the
            // kernel's order was lost.
            return Err(FsError::refused(
                Errno::EIO,
                format!(
                    "{}: a queued write at {offset}, the file ends at {}",
                    self.path, self.end
                ),
            ));
        }
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self
                .writer
                .insert(FileWriter::append(&self.client, &self.path).await?),
        };
        if let Err(e) = writer.write_all(data).await {
            self.writer = None;
            return Err(FsError::from_write(e));
        }
        self.end += data.len() as u64;
        Ok(())
    }

    /// Replaces the file by an empty one like it, open for writing.
    async fn empty(&mut self) -> Result<u64, FsError> {
        self.close().await?;
        let old = self.client.stat(&self.path).await?;
        let (writer, fresh) = replace_empty(&self.client, &self.path, &old).await?;
        self.writer = Some(writer);
        self.end = 0;
        Ok(fresh.id)
    }

    /// Sets times now if the file is complete, else once it is.
    async fn times(&mut self, mtime_ms: Option<u64>, atime_ms: Option<u64>) -> Result<(), FsError> {
        if self.writer.is_some() {
            let (m, a) = self.times.take().unwrap_or_default();
            self.times = Some((mtime_ms.or(m), atime_ms.or(a)));
            return Ok(());
        }
        self.client
            .set_times(&self.path, mtime_ms, atime_ms)
            .await?;
        Ok(())
    }

    /// Completes the file if this handle has it open for writing, then sets the times asked
    /// meanwhile; fails if a write of the handle failed.
    async fn close(&mut self) -> Result<(), FsError> {
        self.failure()?;
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        writer.shutdown().await.map_err(FsError::from_write)?;
        if let Some((mtime, atime)) = self.times.take() {
            self.client.set_times(&self.path, mtime, atime).await?;
        }
        Ok(())
    }
}

/// Replaces the file at `path` (`old`) by an empty one with its mode, owner, group, policy
/// and block size, open for writing; and the new file's status. The owner and group are
/// given back where the mount's user may (the superuser); raftfs's umask is undone.
pub async fn replace_empty(
    client: &Client,
    path: &str,
    old: &FileStatus,
) -> Result<(FileWriter, FileStatus), FsError> {
    let writer = FileWriter::create(client, path, &replacing(old)).await?;
    let mut fresh = client.stat(path).await?;
    let mode = old.permission & 0o7777;
    if fresh.permission & 0o7777 != mode {
        fresh = client.set_permission(path, mode).await?;
    }
    if (fresh.owner != old.owner || fresh.group != old.group)
        && let Ok(owned) = client.set_owner(path, &old.owner, &old.group).await
    {
        fresh = owned;
    }
    Ok((writer, fresh))
}

/// Options that replace `old` with an empty file of the same mode, policy and block size.
fn replacing(old: &FileStatus) -> CreateOptions {
    CreateOptions {
        overwrite: true,
        create_parents: false,
        permission: old.permission & 0o7777,
        storage_policy: old.storage_policy.clone(),
        block_size: old.block_size,
    }
}
