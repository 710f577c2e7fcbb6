//! Writes of an open file. raftfs files are written once, front to back (HDFS's model): a
//! write at the file's end goes into the client's `FileWriter`, any other write is refused
//! with `EOPNOTSUPP` and a message naming the offsets. Closing the file (`flush`, which
//! `close(2)` waits for, and `fsync`) completes it, so that a file closed through the mount
//! is whole for every reader at once; a later write at the end reopens it for appending.
//!
//! Each open file's writes run in order on one task that owns its writer; the kernel's
//! callbacks hand them over through a bounded channel (the writer's pace holds them back).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fuser::{Errno, ReplyEmpty, ReplyWrite};
use raftfs_client::{Client, CreateOptions, FileStatus, FileWriter};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::error::{FsError, log_failure};

/// Requests queued for one file's writer task.
const QUEUED: usize = 4;

/// What the kernel asks of an open file's writer.
#[derive(Debug)]
pub enum WriteOp {
    Write {
        offset: u64,
        data: Vec<u8>,
        reply: ReplyWrite,
    },
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
}

/// The kernel's side of an open file's writer task.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    ops: mpsc::Sender<WriteOp>,
    /// The file's length as written through this handle (what `stat` shows meanwhile).
    pub size: Arc<AtomicU64>,
}

impl WriterHandle {
    /// Starts the task of a file at `path` of length `size`, with `writer` when it is open
    /// for writing already (just created or truncated).
    pub fn start(
        rt: &tokio::runtime::Handle,
        client: Client,
        path: String,
        size: u64,
        writer: Option<FileWriter>,
    ) -> Self {
        let (ops, rx) = mpsc::channel(QUEUED);
        let size = Arc::new(AtomicU64::new(size));
        let task = Writing {
            client,
            span: tracing::info_span!("fuse_write", path = %path),
            path,
            writer,
            size: size.clone(),
            broken: None,
        };
        rt.spawn(task.run(rx));
        Self { ops, size }
    }

    /// Hands `op` to the task, in the order the kernel sent it. Called from the session's
    /// threads, never from the runtime's.
    pub fn send(&self, op: WriteOp) {
        if let Err(mpsc::error::SendError(op)) = self.ops.blocking_send(op) {
            // The task is gone (the runtime is shutting down).
            match op {
                WriteOp::Write { reply, .. } => reply.error(Errno::EIO),
                WriteOp::Close { reply } | WriteOp::Release { reply } => reply.error(Errno::EIO),
                WriteOp::Complete { done } => {
                    let _ = done.send(Err(Errno::EIO));
                }
                WriteOp::Empty { done } => {
                    let _ = done.send(Err(Errno::EIO));
                }
            }
        }
    }

    /// Replaces the file by an empty one, written on through this handle.
    pub async fn empty(&self) -> Result<u64, Errno> {
        let (done, result) = oneshot::channel();
        self.ops
            .send(WriteOp::Empty { done })
            .await
            .map_err(|_| Errno::EIO)?;
        result.await.map_err(|_| Errno::EIO)?
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
    size: Arc<AtomicU64>,
    /// Why the writer failed: every later write fails the same way.
    broken: Option<Errno>,
}

impl Writing {
    async fn run(mut self, mut ops: mpsc::Receiver<WriteOp>) {
        let span = self.span.clone();
        async move {
            while let Some(op) = ops.recv().await {
                match op {
                    WriteOp::Write {
                        offset,
                        data,
                        reply,
                    } => match self.write(offset, &data).await {
                        Ok(n) => reply.written(n),
                        Err(e) => reply.error(self.failed("write", &e)),
                    },
                    WriteOp::Close { reply } => match self.close().await {
                        Ok(()) => reply.ok(),
                        Err(e) => reply.error(self.failed("close", &e)),
                    },
                    WriteOp::Complete { done } => {
                        let r = self.close().await.map_err(|e| self.failed("complete", &e));
                        let _ = done.send(r);
                    }
                    WriteOp::Empty { done } => {
                        let r = self.empty().await.map_err(|e| self.failed("truncate", &e));
                        let _ = done.send(r);
                    }
                    WriteOp::Release { reply } => {
                        match self.close().await {
                            Ok(()) => reply.ok(),
                            Err(e) => reply.error(self.failed("release", &e)),
                        }
                        return;
                    }
                }
            }
            // The kernel went away without a release (an unmount): complete what was written.
            if let Err(e) = self.close().await {
                self.failed("close at unmount", &e);
            }
        }
        .instrument(span)
        .await;
    }

    fn failed(&mut self, what: &str, e: &FsError) -> Errno {
        log_failure(what, e);
        e.errno()
    }

    async fn write(&mut self, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        if let Some(errno) = self.broken {
            return Err(FsError::refused(
                errno,
                "an earlier write of this file failed",
            ));
        }
        let end = self.size.load(Ordering::Acquire);
        if offset != end {
            return Err(FsError::refused(
                Errno::EOPNOTSUPP,
                format!(
                    "{}: a write at offset {offset}, which is not the file's end ({end}): \
                     raftfs files are written front to back",
                    self.path
                ),
            ));
        }
        let len = u32::try_from(data.len())
            .map_err(|_| FsError::refused(Errno::EINVAL, "a write of more than 4 GiB"))?;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self
                .writer
                .insert(FileWriter::append(&self.client, &self.path).await?),
        };
        if let Err(e) = writer.write_all(data).await {
            let e = FsError::from_write(e);
            self.broken = Some(e.errno());
            self.writer = None;
            return Err(e);
        }
        self.size.store(end + u64::from(len), Ordering::Release);
        Ok(len)
    }

    /// Replaces the file by an empty one of the same mode and policy, open for writing.
    async fn empty(&mut self) -> Result<u64, FsError> {
        self.close().await?;
        let old = self.client.stat(&self.path).await?;
        let writer = FileWriter::create(&self.client, &self.path, &replacing(&old)).await?;
        let id = self.client.stat(&self.path).await?.id;
        self.writer = Some(writer);
        self.broken = None;
        self.size.store(0, Ordering::Release);
        Ok(id)
    }

    /// Completes the file if this handle has it open for writing.
    async fn close(&mut self) -> Result<(), FsError> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        if let Err(e) = writer.shutdown().await {
            let e = FsError::from_write(e);
            self.broken = Some(e.errno());
            return Err(e);
        }
        Ok(())
    }
}

/// Options that replace `old` with an empty file of the same mode, policy and block size.
pub fn replacing(old: &FileStatus) -> CreateOptions {
    CreateOptions {
        overwrite: true,
        create_parents: false,
        permission: old.permission & 0o7777,
        storage_policy: old.storage_policy.clone(),
        block_size: old.block_size,
    }
}
