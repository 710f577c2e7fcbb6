//! `metactl fs put | get | cat`: files' bytes between the local disk and raftfs, as `hdfs dfs`.
//!
//! `put` writes to `PATH._COPYING_` and renames it into place once the file is complete (as
//! `hdfs dfs -put` does), so that a failed upload never leaves a partial file under the name
//! asked for; the temporary file is removed on failure.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use raftfs_client::{Client, CreateOptions, ErrorKind, FileReader, FileWriter};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Files smaller than this are copied without a progress bar.
const BAR_FROM: u64 = 64 << 20;

/// Copy buffer: a few cells, so that the writer always has a whole stripe to hand over.
const COPY_BUF: usize = 4 << 20;

fn progress(len: u64, what: &str) -> Option<ProgressBar> {
    if len < BAR_FROM || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    Some(bar)
}

/// Copies `from` into `to`, advancing `bar`; returns the bytes copied.
async fn copy(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    bar: Option<&ProgressBar>,
) -> std::io::Result<u64> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n]).await?;
        total += n as u64;
        if let Some(b) = bar {
            b.inc(n as u64);
        }
    }
}

/// Options of `fs put`.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Replace an existing file (`-f`).
    pub overwrite: bool,
    /// A storage policy for this file (default: inherited from its directory).
    pub policy: Option<String>,
    /// Bytes per internal block (default: the metaserver's).
    pub block_size: Option<u64>,
}

/// `fs put LOCAL PATH`.
pub async fn put(client: &Client, local: &Path, path: &str, opts: &PutOptions) -> Result<u64> {
    let mut src = tokio::fs::File::open(local)
        .await
        .with_context(|| format!("open {}", local.display()))?;
    let len = src.metadata().await?.len();
    if !opts.overwrite && client.stat(path).await.is_ok() {
        bail!("{path}: already exists (use -f to overwrite)");
    }
    let tmp = format!("{path}._COPYING_");
    let create = CreateOptions {
        overwrite: true,
        storage_policy: opts.policy.clone().unwrap_or_default(),
        block_size: opts.block_size.unwrap_or(0),
        ..CreateOptions::default()
    };
    let written = async {
        let mut writer = FileWriter::create(client, &tmp, &create).await?;
        let bar = progress(len, path);
        let n = copy(&mut src, &mut writer, bar.as_ref()).await?;
        writer.shutdown().await?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok::<u64, anyhow::Error>(n)
    }
    .await;
    let n = match written {
        Ok(n) => n,
        Err(e) => {
            // Best effort: the partial file was never complete; do not leave it behind.
            if let Err(cleanup) = client.delete(&tmp, false).await
                && !cleanup.is(ErrorKind::NotFound)
            {
                tracing::warn!(error = %cleanup, "could not remove {tmp}");
            }
            return Err(e);
        }
    };
    client.rename(&tmp, path, opts.overwrite).await?;
    Ok(n)
}

/// `fs get PATH LOCAL`.
pub async fn get(client: &Client, path: &str, local: &Path) -> Result<u64> {
    let mut reader = FileReader::open(client, path).await?;
    let bar = progress(reader.len(), path);
    let part = local.with_extension("_COPYING_");
    let mut out = tokio::fs::File::create(&part)
        .await
        .with_context(|| format!("create {}", part.display()))?;
    let copied = copy(&mut reader, &mut out, bar.as_ref()).await;
    let n = match copied {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e.into());
        }
    };
    out.sync_all().await?;
    tokio::fs::rename(&part, local)
        .await
        .with_context(|| format!("rename to {}", local.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(n)
}

/// `fs cat PATH`.
pub async fn cat(client: &Client, path: &str) -> Result<u64> {
    let mut reader = FileReader::open(client, path).await?;
    let mut out = tokio::io::stdout();
    let n = copy(&mut reader, &mut out, None).await?;
    out.flush().await?;
    Ok(n)
}
