//! `metactl copy SRC DST`: a tree from one cluster (or nameservice) to another, as HDFS's
//! `distcp -update`: directories, files and symlinks, in parallel, each file written under
//! `NAME._COPYING_` and renamed into place once complete and verified (its checksum,
//! comparable across layouts, equal on both sides), with owner, mode, times, extended
//! attributes and storage policy kept unless told otherwise. A file already at the
//! destination with the same length and checksum is skipped, so a round that was interrupted
//! resumes where it stopped when run again. Every action goes to the log (JSON lines).
//!
//! Each side is named as distcp names it: `raftfs://HOST:PORT[,HOST:PORT...]/path`, or a bare
//! path on the cluster of `--cluster`/`--meta`.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use raftfs_client::file::file_checksum;
use raftfs_client::{
    Client, ClientConfig, CreateOptions, DiffEntry, DiffKind, ErrorKind, FileKind, FileStatus,
};
use raftfs_client::{FileReader, FileWriter};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Copy buffer: a few cells, so that the writer always has a whole stripe to hand over.
const COPY_BUF: usize = 4 << 20;

/// One side of a copy: a cluster and a path in it.
#[derive(Debug, Clone)]
pub struct Side {
    pub client: Client,
    pub path: String,
}

/// Parses `raftfs://HOST:PORT[,HOST:PORT...]/path` into the cluster's addresses and the path;
/// `None` for a bare path (the `--cluster` cluster's).
pub fn parse_uri(uri: &str) -> Result<Option<(Vec<String>, String)>> {
    let Some(rest) = uri.strip_prefix("raftfs://") else {
        if uri.contains("://") {
            bail!("{uri}: only raftfs:// URIs and bare paths are understood");
        }
        return Ok(None);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addrs = raftfs_client::discovery::parse_addrs(authority);
    if addrs.is_empty() {
        bail!("{uri}: no metaserver address");
    }
    Ok(Some((addrs, path.to_owned())))
}

/// The side `uri` names: its own cluster (the settings of `base`, another cluster's
/// addresses), or `base`'s cluster for a bare path.
pub fn side(uri: &str, base: &Client) -> Result<Side> {
    match parse_uri(uri)? {
        None => Ok(Side {
            client: base.clone(),
            path: uri.to_owned(),
        }),
        Some((metas, path)) => {
            let config = ClientConfig {
                metas,
                ..base.config().clone()
            };
            Ok(Side {
                client: Client::new(config)?,
                path,
            })
        }
    }
}

/// What a copy keeps of each source entry besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Preserve {
    pub owner: bool,
    pub mode: bool,
    pub times: bool,
    pub xattrs: bool,
    pub policy: bool,
}

impl Preserve {
    pub const ALL: Preserve = Preserve {
        owner: true,
        mode: true,
        times: true,
        xattrs: true,
        policy: true,
    };

    /// Everything but the attributes named (`owner,mode,times,xattrs,policy`).
    pub fn all_but(names: &[String]) -> Result<Self> {
        let mut p = Self::ALL;
        for n in names {
            match n.as_str() {
                "owner" => p.owner = false,
                "mode" => p.mode = false,
                "times" => p.times = false,
                "xattrs" => p.xattrs = false,
                "policy" => p.policy = false,
                other => {
                    bail!("--no-preserve {other}: not one of owner, mode, times, xattrs, policy")
                }
            }
        }
        Ok(p)
    }
}

/// How a copy runs.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Files copied at once.
    pub workers: usize,
    pub preserve: Preserve,
    /// Where every action is logged (JSON lines); none: nowhere.
    pub log: Option<PathBuf>,
    /// Remove what the destination has and the source has not (and an entry of another
    /// kind than the source's of that name), as distcp's `-delete`: the destination ends
    /// equal to the source.
    pub delete: bool,
}

/// What a copy did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub directories: u64,
    pub files_copied: u64,
    pub files_skipped: u64,
    pub symlinks: u64,
    /// Entries removed from the destination (`--delete`, or deleted at the source between
    /// the snapshots of `--diff`), each with what was below it.
    pub deleted: u64,
    /// Entries moved at the destination as they were at the source (`--diff`).
    pub renamed: u64,
    /// Files whose attributes alone changed at the source, set without reading bytes
    /// (`--diff`).
    pub attributes: u64,
    pub bytes_copied: u64,
    pub errors: u64,
}

/// One entry of the source tree, by its path below the copy's root.
#[derive(Debug, Clone)]
struct Entry {
    rel: String,
    status: FileStatus,
}

fn join(base: &str, rel: &str) -> String {
    match (base.trim_end_matches('/'), rel) {
        ("", "") => "/".to_owned(),
        (b, "") => b.to_owned(),
        (b, r) => format!("{b}/{r}"),
    }
}

/// The log of a copy: one JSON line per action, flushed as written.
pub struct Log(Option<Mutex<std::fs::File>>);

impl Log {
    pub fn open(path: Option<&PathBuf>) -> Result<Self> {
        Ok(Self(match path {
            None => None,
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("opening the log {}", p.display()))?,
            )),
        }))
    }

    pub fn write(&self, action: &str, path: &str, detail: serde_json::Value) {
        let Some(f) = &self.0 else { return };
        let line = serde_json::json!({
            "time_ms": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            "action": action,
            "path": path,
            "detail": detail,
        });
        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(f, "{line}");
    }
}

/// Copies `src` to `dst`.
pub async fn run(src: &Side, dst: &Side, opts: &CopyOptions) -> Result<Summary> {
    let log = Arc::new(Log::open(opts.log.as_ref())?);
    let root = src
        .client
        .stat(&src.path)
        .await
        .with_context(|| format!("source {}", src.path))?;
    log.write("start", &src.path, serde_json::json!({ "to": dst.path }));
    let entries = walk(src, root).await?;
    let mut summary = Summary::default();
    if opts.delete {
        summary.deleted = delete_extras(&entries, dst, &log).await?;
    }
    apply(src, dst, &entries, opts, &log, &mut summary).await?;
    log.write("end", &src.path, serde_json::to_value(&summary)?);
    Ok(summary)
}

/// Writes `entries` of `src` at `dst`: directories first (parents before children), then
/// files in parallel, then symlinks, then the directories' attributes (deepest first:
/// adding children moves a directory's times).
async fn apply(
    src: &Side,
    dst: &Side,
    entries: &[Entry],
    opts: &CopyOptions,
    log: &Arc<Log>,
    summary: &mut Summary,
) -> Result<()> {
    let total: u64 = entries
        .iter()
        .filter(|e| e.status.kind == FileKind::File)
        .map(|e| e.status.length)
        .sum();
    for e in entries
        .iter()
        .filter(|e| e.status.kind == FileKind::Directory)
    {
        let to = join(&dst.path, &e.rel);
        dst.client
            .mkdir(&to, true)
            .await
            .with_context(|| format!("mkdir {to}"))?;
        if opts.preserve.policy && !e.status.storage_policy.is_empty() {
            dst.client
                .set_storage_policy(&to, &e.status.storage_policy)
                .await
                .with_context(|| format!("storage policy of {to}"))?;
        }
        summary.directories += 1;
    }
    let bar = bar(total);
    let files: VecDeque<Entry> = entries
        .iter()
        .filter(|e| e.status.kind == FileKind::File)
        .cloned()
        .collect();
    let queue = Arc::new(Mutex::new(files));
    let totals = Arc::new(Mutex::new(Summary::default()));
    // A JoinSet: a copy cancelled (its future dropped: `balance`'s Ctrl-C) stops its workers
    // too, instead of leaving them writing after the rollback.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.workers.max(1) {
        let (src, dst, queue, totals, log, bar) = (
            src.clone(),
            dst.clone(),
            queue.clone(),
            totals.clone(),
            log.clone(),
            bar.clone(),
        );
        let preserve = opts.preserve;
        workers.spawn(async move {
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some(e) = next else { return };
                let from = join(&src.path, &e.rel);
                let to = join(&dst.path, &e.rel);
                let r = copy_file(&src.client, &from, &dst.client, &to, &e.status, preserve, bar.as_ref()).await;
                let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                match r {
                    Ok(Copied::Skipped) => {
                        t.files_skipped += 1;
                        if let Some(b) = &bar {
                            b.inc(e.status.length);
                        }
                        log.write("skip", &from, serde_json::json!({ "reason": "same length and checksum" }));
                    }
                    Ok(Copied::Bytes(n, crc)) => {
                        t.files_copied += 1;
                        t.bytes_copied += n;
                        log.write("copy", &from, serde_json::json!({ "to": to, "bytes": n, "crc32c": format!("{crc:08x}") }));
                    }
                    Err(err) => {
                        t.errors += 1;
                        eprintln!("error: {from}: {err:#}");
                        log.write("error", &from, serde_json::json!({ "error": format!("{err:#}") }));
                    }
                }
            }
        });
    }
    while let Some(w) = workers.join_next().await {
        w.context("a copy worker panicked")?;
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    {
        let t = totals.lock().unwrap_or_else(|p| p.into_inner());
        summary.files_copied += t.files_copied;
        summary.files_skipped += t.files_skipped;
        summary.bytes_copied += t.bytes_copied;
        summary.errors += t.errors;
    }
    for e in entries
        .iter()
        .filter(|e| e.status.kind == FileKind::Symlink)
    {
        let to = join(&dst.path, &e.rel);
        match dst.client.stat(&to).await {
            Ok(existing) if existing.symlink_target == e.status.symlink_target => {}
            Ok(_) => {
                dst.client.delete(&to, false).await?;
                dst.client.symlink(&to, &e.status.symlink_target).await?;
            }
            Err(err) if err.is(ErrorKind::NotFound) => {
                dst.client.symlink(&to, &e.status.symlink_target).await?;
            }
            Err(err) => return Err(err.into()),
        }
        if opts.preserve.times {
            dst.client
                .set_times(&to, Some(e.status.mtime_ms), Some(e.status.atime_ms))
                .await
                .with_context(|| format!("times of {to}"))?;
        }
        summary.symlinks += 1;
        log.write(
            "symlink",
            &to,
            serde_json::json!({ "target": e.status.symlink_target }),
        );
    }
    let mut dirs: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.status.kind == FileKind::Directory)
        .collect();
    dirs.sort_by_key(|e| std::cmp::Reverse(depth(&e.rel)));
    for e in dirs {
        let to = join(&dst.path, &e.rel);
        let from = join(&src.path, &e.rel);
        set_attributes(
            &src.client,
            &from,
            &dst.client,
            &to,
            &e.status,
            opts.preserve,
        )
        .await
        .with_context(|| format!("attributes of {to}"))?;
    }
    Ok(())
}

/// How deep a path below the copy's root is (the root: 0).
fn depth(rel: &str) -> usize {
    rel.matches('/').count() + usize::from(!rel.is_empty())
}

/// The extended attribute a `--diff` round keeps on the destination's root while it runs
/// (`FROM TO`): a round interrupted part-way is resumed, not refused for the changes it made.
const ROUND_MARK: &str = "user.raftfs.copy-diff";
/// Where a round holds what it moves (below the destination's root, removed after).
const HOLD: &str = ".raftfs-copy-diff";

/// A round of `copy --diff FROM TO` (distcp's `-update -diff`): the destination, which
/// must hold snapshot FROM and nothing changed since, gets only what changed at the source
/// between its snapshots FROM and TO: deletions and renames first (deepest first, moved
/// entries held below the root and put at their targets shallowest first), then what was
/// created or modified, read from `SRC/.snapshot/TO`; then the destination takes snapshot
/// TO, so that the next round starts from it. Its cost grows with the changes, not the tree.
pub async fn run_diff(
    src: &Side,
    dst: &Side,
    from: &str,
    to: &str,
    opts: &CopyOptions,
) -> Result<Summary> {
    let log = Arc::new(Log::open(opts.log.as_ref())?);
    let round = format!("{from} {to}");
    let marked = dst
        .client
        .get_xattrs(&dst.path, &[])
        .await
        .with_context(|| format!("destination {}", dst.path))?
        .into_iter()
        .find(|(n, _)| n == ROUND_MARK)
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned());
    match marked.as_deref() {
        Some(m) if m == round => {}
        Some(other) => bail!(
            "{}: a round {other} was interrupted there; finish it first",
            dst.path
        ),
        None => {
            check_unchanged(dst, from).await?;
            dst.client
                .set_xattr(&dst.path, ROUND_MARK, round.as_bytes(), None)
                .await?;
        }
    }
    log.write(
        "start",
        &src.path,
        serde_json::json!({ "to": dst.path, "diff": [from, to], "resumed": marked.is_some() }),
    );
    let diff = src
        .client
        .snapshot_diff(&src.path, from, to)
        .await
        .with_context(|| format!("snapshot diff of {} from {from} to {to}", src.path))?;
    let mut summary = Summary::default();
    move_and_delete(dst, &diff, &log, &mut summary).await?;
    let snap = Side {
        client: src.client.clone(),
        path: format!("{}/.snapshot/{to}", src.path.trim_end_matches('/')),
    };
    let (entries, attributes) = changed(&snap, &diff).await?;
    let (root, below): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| e.rel.is_empty());
    apply(&snap, dst, &below, opts, &log, &mut summary).await?;
    summary.attributes = set_all_attributes(&snap, dst, attributes, opts, &log).await?;
    if summary.errors > 0 {
        log.write("end", &src.path, serde_json::to_value(&summary)?);
        return Ok(summary);
    }
    dst.client.remove_xattr(&dst.path, ROUND_MARK).await?;
    // The root last (what the round did below it moved its times).
    let root = match root.into_iter().next() {
        Some(r) => r,
        None => Entry {
            rel: String::new(),
            status: snap.client.stat(&snap.path).await?,
        },
    };
    set_attributes(
        &snap.client,
        &snap.path,
        &dst.client,
        &dst.path,
        &root.status,
        opts.preserve,
    )
    .await
    .with_context(|| format!("attributes of {}", dst.path))?;
    match dst.client.create_snapshot(&dst.path, Some(to)).await {
        Ok(_) => {}
        Err(e) if e.is(ErrorKind::AlreadyExists) => {}
        Err(e) => return Err(e).with_context(|| format!("snapshot {to} of {}", dst.path)),
    }
    log.write("end", &src.path, serde_json::to_value(&summary)?);
    Ok(summary)
}

/// Sets the attributes of `entries` (files whose bytes did not change) at `dst`, by
/// `--workers` at once; returns how many.
async fn set_all_attributes(
    snap: &Side,
    dst: &Side,
    entries: Vec<Entry>,
    opts: &CopyOptions,
    log: &Arc<Log>,
) -> Result<u64> {
    let n = entries.len() as u64;
    let queue = Arc::new(Mutex::new(VecDeque::from(entries)));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.workers.max(1) {
        let (snap, dst, queue, log, preserve) = (
            snap.clone(),
            dst.clone(),
            queue.clone(),
            log.clone(),
            opts.preserve,
        );
        workers.spawn(async move {
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some(e) = next else {
                    return Ok::<(), anyhow::Error>(());
                };
                let (from, to) = (join(&snap.path, &e.rel), join(&dst.path, &e.rel));
                set_attributes(&snap.client, &from, &dst.client, &to, &e.status, preserve)
                    .await
                    .with_context(|| format!("attributes of {to}"))?;
                log.write("attributes", &to, serde_json::json!({}));
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.context("an attribute worker panicked")??;
    }
    Ok(n)
}

/// Refuses a destination that is not as its snapshot `from` left it (as distcp does: the
/// diff would be applied to a tree it does not describe).
async fn check_unchanged(dst: &Side, from: &str) -> Result<()> {
    let changes = dst
        .client
        .snapshot_diff(&dst.path, from, ".")
        .await
        .with_context(|| format!("{}: snapshot {from} of the destination", dst.path))?;
    if !changes.is_empty() {
        bail!(
            "{} changed since its snapshot {from} ({} changes, the first: {} {}): refusing to apply a diff to it",
            dst.path,
            changes.len(),
            changes[0].kind.mark(),
            changes[0].path
        );
    }
    Ok(())
}

/// Deletions and renames of `diff` at `dst`: both taken out deepest first (a deletion
/// inside a moved subtree goes before the move, a move out of a deleted subtree before the
/// deletion), moved entries held below the root, then put at their targets shallowest
/// first. Each step tolerates having been done already (a resumed round).
async fn move_and_delete(
    dst: &Side,
    diff: &[DiffEntry],
    log: &Log,
    summary: &mut Summary,
) -> Result<()> {
    let mut out: Vec<&DiffEntry> = diff
        .iter()
        .filter(|e| matches!(e.kind, DiffKind::Deleted | DiffKind::Renamed))
        .collect();
    out.sort_by(|a, b| {
        depth(&b.path)
            .cmp(&depth(&a.path))
            .then(a.path.cmp(&b.path))
    });
    let hold = join(&dst.path, HOLD);
    if out.iter().any(|e| e.kind == DiffKind::Renamed) {
        dst.client.mkdir(&hold, true).await?;
    }
    let mut held = Vec::new();
    for (i, e) in out.iter().enumerate() {
        let at = join(&dst.path, &e.path);
        match (&e.kind, &e.target) {
            (DiffKind::Renamed, Some(target)) => {
                let slot = join(&hold, &i.to_string());
                gone_ok(dst.client.rename(&at, &slot, false).await)?;
                held.push((target.clone(), slot, at));
            }
            _ => {
                if gone_ok(dst.client.delete(&at, true).await)? {
                    log.write("delete", &at, serde_json::json!({}));
                }
                summary.deleted += 1;
            }
        }
    }
    held.sort_by_key(|(target, _, _)| depth(target));
    for (target, slot, was) in held {
        let to = join(&dst.path, &target);
        if let Some((parent, _)) = to.rsplit_once('/')
            && !parent.is_empty()
        {
            dst.client.mkdir(parent, true).await?;
        }
        if gone_ok(dst.client.rename(&slot, &to, false).await)? {
            log.write("rename", &was, serde_json::json!({ "to": to }));
        }
        summary.renamed += 1;
    }
    if exists(&dst.client, &hold).await? {
        dst.client.delete(&hold, false).await?;
    }
    Ok(())
}

/// `Ok(true)` when the step was done now, `Ok(false)` when its source is gone already (done
/// by the round this one resumes).
fn gone_ok<T>(r: Result<T, raftfs_client::ClientError>) -> Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.is(ErrorKind::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn exists(c: &Client, path: &str) -> Result<bool> {
    match c.stat(path).await {
        Ok(_) => Ok(true),
        Err(e) if e.is(ErrorKind::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What `diff` created or modified, as it is in `snap` (a created directory with all it
/// holds), by path below the root, parents before children; and apart, the files whose
/// attributes alone changed (no bytes to read).
async fn changed(snap: &Side, diff: &[DiffEntry]) -> Result<(Vec<Entry>, Vec<Entry>)> {
    let mut found: std::collections::BTreeMap<String, Entry> = std::collections::BTreeMap::new();
    let mut attributes = Vec::new();
    for e in diff {
        let rel = match e.kind {
            DiffKind::Created | DiffKind::Modified => &e.path,
            DiffKind::Deleted | DiffKind::Renamed => continue,
        };
        let at = join(&snap.path, rel);
        let status = snap
            .client
            .stat(&at)
            .await
            .with_context(|| format!("stat {at}"))?;
        if e.kind == DiffKind::Modified && !e.content && status.kind == FileKind::File {
            attributes.push(Entry {
                rel: rel.clone(),
                status,
            });
            continue;
        }
        if e.kind == DiffKind::Created && status.kind == FileKind::Directory {
            let below = Side {
                client: snap.client.clone(),
                path: at,
            };
            for mut sub in walk(&below, status).await? {
                sub.rel = join(rel, &sub.rel).trim_start_matches('/').to_owned();
                found.insert(sub.rel.clone(), sub);
            }
        } else {
            found.insert(
                rel.clone(),
                Entry {
                    rel: rel.clone(),
                    status,
                },
            );
        }
    }
    let mut out: Vec<Entry> = found.into_values().collect();
    out.sort_by_key(|e| depth(&e.rel));
    Ok((out, attributes))
}

fn bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "copy [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// Removes what the destination has below its root and the source has not, or has as
/// another kind: the topmost such entries, each with its subtree. Returns how many.
async fn delete_extras(entries: &[Entry], dst: &Side, log: &Log) -> Result<u64> {
    let root = match dst.client.stat(&dst.path).await {
        Ok(r) => r,
        Err(e) if e.is(ErrorKind::NotFound) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let there = walk(dst, root).await?;
    let kinds: std::collections::HashMap<&str, FileKind> = entries
        .iter()
        .map(|e| (e.rel.as_str(), e.status.kind))
        .collect();
    let mut removed: Vec<String> = Vec::new();
    let mut n = 0;
    for e in &there {
        if e.rel.is_empty() || removed.iter().any(|r| e.rel.starts_with(&format!("{r}/"))) {
            continue;
        }
        if kinds.get(e.rel.as_str()) == Some(&e.status.kind) {
            continue;
        }
        let path = join(&dst.path, &e.rel);
        dst.client
            .delete(&path, true)
            .await
            .with_context(|| format!("delete {path}"))?;
        log.write(
            "delete",
            &path,
            serde_json::json!({ "kind": format!("{:?}", e.status.kind) }),
        );
        removed.push(e.rel.clone());
        n += 1;
    }
    Ok(n)
}

/// Every entry of the source tree (the root first, parents before children).
async fn walk(src: &Side, root: FileStatus) -> Result<Vec<Entry>> {
    let mut out = vec![Entry {
        rel: String::new(),
        status: root,
    }];
    let mut i = 0;
    while i < out.len() {
        if out[i].status.kind == FileKind::Directory {
            let rel = out[i].rel.clone();
            let dir = join(&src.path, &rel);
            let children = src
                .client
                .list(&dir)
                .await
                .with_context(|| format!("listing {dir}"))?;
            for c in children {
                out.push(Entry {
                    rel: join(&rel, &c.name).trim_start_matches('/').to_owned(),
                    status: c,
                });
            }
        }
        i += 1;
    }
    Ok(out)
}

enum Copied {
    Skipped,
    Bytes(u64, u32),
}

/// Copies one file (unless the destination has the same length and checksum), verifies the
/// copy's checksum, and sets its attributes.
#[allow(clippy::too_many_arguments)]
async fn copy_file(
    src: &Client,
    from: &str,
    dst: &Client,
    to: &str,
    status: &FileStatus,
    preserve: Preserve,
    bar: Option<&ProgressBar>,
) -> Result<Copied> {
    let want = file_checksum(src, from).await?;
    match dst.stat(to).await {
        Ok(there) if there.kind == FileKind::File && there.length == status.length => {
            let have = file_checksum(dst, to).await?;
            if have.crc32c == want.crc32c && have.length == want.length {
                set_attributes(src, from, dst, to, status, preserve).await?;
                return Ok(Copied::Skipped);
            }
        }
        Ok(_) => {}
        Err(e) if e.is(ErrorKind::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let tmp = format!("{to}._COPYING_");
    let create = CreateOptions {
        overwrite: true,
        create_parents: true,
        storage_policy: if preserve.policy {
            status.storage_policy.clone()
        } else {
            String::new()
        },
        block_size: if preserve.policy {
            status.block_size
        } else {
            0
        },
        ..CreateOptions::default()
    };
    let written = async {
        let mut reader = FileReader::open(src, from).await?;
        let mut writer = FileWriter::create(dst, &tmp, &create).await?;
        let mut buf = vec![0u8; COPY_BUF];
        let mut n = 0u64;
        loop {
            let got = reader.read(&mut buf).await?;
            if got == 0 {
                break;
            }
            writer.write_all(&buf[..got]).await?;
            n += got as u64;
            if let Some(b) = bar {
                b.inc(got as u64);
            }
        }
        writer.shutdown().await?;
        let have = file_checksum(dst, &tmp).await?;
        if have.crc32c != want.crc32c || have.length != want.length {
            bail!(
                "the copy's checksum {:08x} ({} bytes) is not the source's {:08x} ({} bytes)",
                have.crc32c,
                have.length,
                want.crc32c,
                want.length
            );
        }
        Ok::<u64, anyhow::Error>(n)
    }
    .await;
    let n = match written {
        Ok(n) => n,
        Err(e) => {
            if let Err(cleanup) = dst.delete(&tmp, false).await
                && !cleanup.is(ErrorKind::NotFound)
            {
                tracing::warn!(error = %cleanup, "could not remove {tmp}");
            }
            return Err(e);
        }
    };
    dst.rename(&tmp, to, true).await?;
    set_attributes(src, from, dst, to, status, preserve).await?;
    Ok(Copied::Bytes(n, want.crc32c))
}

/// Sets what `preserve` keeps of the source entry on its copy: extended attributes, owner,
/// mode, then times (last: the other changes may move them). Only what differs is written:
/// a round with nothing changed journals nothing at the destination.
async fn set_attributes(
    src: &Client,
    from: &str,
    dst: &Client,
    to: &str,
    status: &FileStatus,
    preserve: Preserve,
) -> Result<()> {
    let mut wrote = false;
    if preserve.xattrs {
        let want = src.get_xattrs(from, &[]).await?;
        let have = dst.get_xattrs(to, &[]).await?;
        for (name, value) in &want {
            if !have.iter().any(|(n, v)| n == name && v == value) {
                dst.set_xattr(to, name, value, None).await?;
                wrote = true;
            }
        }
        for (name, _) in &have {
            if !want.iter().any(|(n, _)| n == name) {
                dst.remove_xattr(to, name).await?;
                wrote = true;
            }
        }
    }
    let have = dst.stat(to).await?;
    if preserve.owner && (have.owner != status.owner || have.group != status.group) {
        dst.set_owner(to, &status.owner, &status.group).await?;
        wrote = true;
    }
    if preserve.mode && have.permission != status.permission {
        dst.set_permission(to, status.permission).await?;
        wrote = true;
    }
    let times_differ = have.mtime_ms != status.mtime_ms || have.atime_ms != status.atime_ms;
    if preserve.times && (wrote || times_differ) {
        dst.set_times(to, Some(status.mtime_ms), Some(status.atime_ms))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_a_cluster_and_a_path() {
        let (addrs, path) = parse_uri("raftfs://a:1,b:2/x/y")
            .expect("parses")
            .expect("a uri");
        assert_eq!(addrs, ["a:1", "b:2"]);
        assert_eq!(path, "/x/y");
        let (_, root) = parse_uri("raftfs://a:1").expect("parses").expect("a uri");
        assert_eq!(root, "/");
        assert!(parse_uri("/bare/path").expect("parses").is_none());
        assert!(parse_uri("hdfs://nn:8020/x").is_err());
        assert!(parse_uri("raftfs:///x").is_err());
    }

    #[test]
    fn paths_join_below_the_roots() {
        assert_eq!(join("/", ""), "/");
        assert_eq!(join("/", "a/b"), "/a/b");
        assert_eq!(join("/backup/", "a"), "/backup/a");
        assert_eq!(join("/backup", ""), "/backup");
        assert!(Preserve::all_but(&["owner".into(), "times".into()]).is_ok());
        assert!(Preserve::all_but(&["acl".into()]).is_err());
    }
}
