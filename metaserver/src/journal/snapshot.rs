//! Snapshots as files: a RocksDB checkpoint of the state machine, packed into one tar file
//! that openraft streams to a follower in chunks, plus the openraft metadata beside it.
//!
//! Layout under `<data_dir>/snapshots/`: `<id>.tar`, `<id>.meta` (a versioned record,
//! `journal::format::SnapshotMetaRecord`), and `CURRENT` naming the
//! newest complete one. A snapshot is written under a temporary name, fsynced, then renamed:
//! a crash never leaves a `CURRENT` pointing at half a file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use openraft::SnapshotMeta;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use raftfs_core::format;

use super::format::SnapshotMetaRecord;
use super::{BasicNodeMeta, MemberId};

/// The snapshot data openraft reads (to send) and writes (while receiving): a file.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    file: FileIo,
}

/// The file behind a [`SnapshotFile`]: tokio's (its calls on the blocking pool), or, in a
/// simulation, a plain file called inline so that each call completes at the same point of
/// every run (`raftfs_runtime::simulation`).
#[derive(Debug)]
enum FileIo {
    Async(tokio::fs::File),
    Inline {
        file: fs::File,
        /// Where the last `start_seek` went (what `poll_complete` answers).
        sought: Option<io::Result<u64>>,
    },
}

impl FileIo {
    fn inline(file: fs::File) -> Self {
        FileIo::Inline { file, sought: None }
    }
}

impl SnapshotFile {
    /// Opens an existing snapshot file for reading.
    pub async fn open(path: PathBuf) -> io::Result<Self> {
        let file = if raftfs_runtime::simulation::active() {
            FileIo::inline(fs::File::open(&path)?)
        } else {
            FileIo::Async(tokio::fs::File::open(&path).await?)
        };
        Ok(Self { path, file })
    }

    /// Creates a file to receive a snapshot into.
    pub async fn create(path: PathBuf) -> io::Result<Self> {
        let file = if raftfs_runtime::simulation::active() {
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            FileIo::inline(f)
        } else {
            let f = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .await?;
            FileIo::Async(f)
        };
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and fsyncs what was received.
    pub async fn sync(&mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match &mut self.file {
            FileIo::Async(f) => {
                f.flush().await?;
                f.sync_all().await
            }
            FileIo::Inline { file, .. } => file.sync_all(),
        }
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.file {
            FileIo::Async(f) => Pin::new(f).poll_read(cx, buf),
            FileIo::Inline { file, .. } => {
                let n = io::Read::read(file, buf.initialize_unfilled())?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.file {
            FileIo::Async(f) => Pin::new(f).poll_write(cx, buf),
            FileIo::Inline { file, .. } => Poll::Ready(io::Write::write(file, buf)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.file {
            FileIo::Async(f) => Pin::new(f).poll_flush(cx),
            FileIo::Inline { .. } => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.file {
            FileIo::Async(f) => Pin::new(f).poll_shutdown(cx),
            FileIo::Inline { .. } => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        match &mut self.file {
            FileIo::Async(f) => Pin::new(f).start_seek(position),
            FileIo::Inline { file, sought } => {
                *sought = Some(io::Seek::seek(file, position));
                Ok(())
            }
        }
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match &mut self.file {
            FileIo::Async(f) => Pin::new(f).poll_complete(cx),
            FileIo::Inline { file, sought } => Poll::Ready(
                sought
                    .take()
                    .unwrap_or_else(|| io::Seek::stream_position(file)),
            ),
        }
    }
}

/// The snapshot directory.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn invalid(e: format::FormatError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl SnapshotDir {
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A fresh, unused path inside the directory for temporary work.
    pub fn scratch(&self, what: &str) -> PathBuf {
        let suffix = raftfs_runtime::simulation::unique_suffix();
        self.dir.join(format!("{what}-{suffix}"))
    }

    /// Packs the checkpoint directory `checkpoint` into one tar file (fsynced).
    pub fn pack(&self, checkpoint: &Path) -> io::Result<PathBuf> {
        let tar_path = self.scratch("packing").with_extension("tar");
        let file = fs::File::create(&tar_path)?;
        let mut builder = tar::Builder::new(io::BufWriter::new(file));
        builder.append_dir_all(".", checkpoint)?;
        let file = builder
            .into_inner()?
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok(tar_path)
    }

    /// Unpacks a snapshot tar into `dest` (which must not exist), fsynced.
    pub fn unpack(tar_path: &Path, dest: &Path) -> io::Result<()> {
        fs::create_dir_all(dest)?;
        let mut archive = tar::Archive::new(io::BufReader::new(fs::File::open(tar_path)?));
        archive.unpack(dest)?;
        for entry in fs::read_dir(dest)? {
            fs::File::open(entry?.path())?.sync_all()?;
        }
        fsync_dir(dest)
    }

    /// Makes the packed `tar_path` the current snapshot with `meta`, and drops older ones.
    pub fn publish(
        &self,
        tar_path: &Path,
        meta: &SnapshotMeta<MemberId, BasicNodeMeta>,
    ) -> io::Result<PathBuf> {
        let id = &meta.snapshot_id;
        let final_tar = self.dir.join(format!("{id}.tar"));
        let meta_tmp = self.dir.join(format!("{id}.meta.tmp"));
        fs::write(
            &meta_tmp,
            format::encode::<SnapshotMetaRecord>(meta).map_err(invalid)?,
        )?;
        fs::File::open(&meta_tmp)?.sync_all()?;
        fs::rename(&meta_tmp, self.dir.join(format!("{id}.meta")))?;
        fs::rename(tar_path, &final_tar)?;
        let current_tmp = self.dir.join("CURRENT.tmp");
        fs::write(&current_tmp, id.as_bytes())?;
        fs::File::open(&current_tmp)?.sync_all()?;
        fs::rename(&current_tmp, self.dir.join("CURRENT"))?;
        fsync_dir(&self.dir)?;
        // Older snapshots and leftovers of interrupted work are no longer needed.
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if name == "CURRENT" || name.starts_with(&format!("{id}.")) || name.starts_with("recv-")
            {
                continue;
            }
            if path.is_dir() {
                let _ = fs::remove_dir_all(&path);
            } else {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(final_tar)
    }

    /// The current snapshot: its metadata and the path of its tar.
    pub fn current(&self) -> io::Result<Option<(SnapshotMeta<MemberId, BasicNodeMeta>, PathBuf)>> {
        let id = match fs::read_to_string(self.dir.join("CURRENT")) {
            Ok(id) => id,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta =
            format::decode::<SnapshotMetaRecord>(&fs::read(self.dir.join(format!("{id}.meta")))?)
                .map_err(invalid)?;
        Ok(Some((meta, self.dir.join(format!("{id}.tar")))))
    }
}
