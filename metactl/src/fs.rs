//! `metactl fs ...`: file commands that behave like `hdfs dfs`.

use std::io::Write;

use anyhow::{Context, Result};
use raftfs_client::{Client, ClientError, ErrorKind, FileKind, FileStatus};
use raftfs_core::StoragePolicy;

/// `drwxr-xr-x` from a kind and permission bits.
pub fn mode_string(kind: FileKind, permission: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        FileKind::Directory => 'd',
        FileKind::Symlink => 'l',
        FileKind::File => '-',
    });
    for shift in [6u32, 3, 0] {
        let bits = (permission >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// `yyyy-MM-dd HH:mm` in UTC, as `hdfs dfs -ls` prints.
pub fn short_time(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

fn replication(f: &FileStatus) -> String {
    match (f.kind, f.storage_policy.parse::<StoragePolicy>()) {
        (FileKind::File, Ok(StoragePolicy::Replicated(n))) => n.to_string(),
        _ => "-".to_owned(),
    }
}

/// One `hdfs dfs -ls` line.
pub fn ls_line(f: &FileStatus, path: &str) -> String {
    format!(
        "{} {:>3} {:<8} {:<10} {:>12} {} {}",
        mode_string(f.kind, f.permission),
        replication(f),
        f.owner,
        f.group,
        f.length,
        short_time(f.mtime_ms),
        path
    )
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Where snapshot `name` of `dir` is read: `DIR/.snapshot/NAME`.
pub fn snapshot_path(dir: &str, name: &str) -> String {
    format!("{}/.snapshot/{name}", dir.trim_end_matches('/'))
}

/// `fs snapshot-diff`, printed as HDFS's report (`./` before each relative path).
pub async fn snapshot_diff(
    client: &Client,
    dir: &str,
    from: &str,
    to: &str,
    json: bool,
) -> Result<()> {
    let entries = client.snapshot_diff(dir, from, to).await?;
    if json {
        let doc = serde_json::json!({ "path": dir, "from": from, "to": to, "entries": entries });
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(());
    }
    let side = |s: &str| match s {
        "." | "" => "the current tree".to_owned(),
        name => format!("snapshot {name}"),
    };
    let rel = |p: &str| {
        if p.is_empty() {
            ".".to_owned()
        } else {
            format!("./{p}")
        }
    };
    println!(
        "Difference between {} and {} under directory {dir}:",
        side(from),
        side(to)
    );
    for e in &entries {
        match &e.target {
            Some(t) => println!("{}\t{} -> {}", e.kind.mark(), rel(&e.path), rel(t)),
            None => println!("{}\t{}", e.kind.mark(), rel(&e.path)),
        }
    }
    Ok(())
}

/// `fs ls`.
pub async fn ls(client: &Client, path: &str, json: bool) -> Result<()> {
    let st = client.stat(path).await?;
    if json {
        let entries = if st.is_dir() {
            client.list(path).await?
        } else {
            vec![st.clone()]
        };
        let doc = serde_json::json!({ "path": path, "entries": entries });
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let r = if st.is_dir() {
        ls_pages(client, path, st.children, &mut out).await
    } else {
        writeln!(out, "{}", ls_line(&st, path)).map_err(Into::into)
    };
    match r {
        // `metactl fs ls DIR | head`: the reader has seen enough.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// A directory's listing printed page by page, as it arrives (a directory of a million
/// entries is not held in memory), after HDFS's "Found N items" header.
async fn ls_pages(client: &Client, path: &str, children: u64, out: &mut impl Write) -> Result<()> {
    writeln!(out, "Found {children} items")?;
    let mut after = String::new();
    loop {
        let page = client.list_page(path, &after, 0).await?;
        for e in &page.entries {
            writeln!(out, "{}", ls_line(e, &join(path, &e.name)))?;
        }
        match page.entries.last() {
            Some(last) if page.has_more => after = last.name.clone(),
            _ => return Ok(out.flush()?),
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `fs stat`.
/// `fs checksum`: as `hadoop fs -checksum` in COMPOSITE_CRC mode prints it (path, algorithm,
/// checksum), with the bytes it covers.
pub async fn checksum(client: &Client, path: &str, json: bool) -> Result<()> {
    let sum = raftfs_client::file::file_checksum(client, path).await?;
    if json {
        let mut doc = serde_json::to_value(sum)?;
        doc["path"] = serde_json::Value::String(path.to_owned());
        doc["algorithm"] = serde_json::Value::String("COMPOSITE-CRC32C".into());
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        println!(
            "{path}\tCOMPOSITE-CRC32C\t{:08x}\t{} bytes",
            sum.crc32c, sum.length
        );
    }
    Ok(())
}

pub async fn stat(client: &Client, path: &str, json: bool) -> Result<()> {
    let st = client.stat(path).await?;
    if json {
        let mut doc = serde_json::to_value(&st)?;
        doc["path"] = serde_json::Value::String(path.to_owned());
        doc["state_id"] = serde_json::Value::from(client.state_id());
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(());
    }
    let kind = match st.kind {
        FileKind::Directory => "directory",
        FileKind::File => "regular file",
        FileKind::Symlink => "symlink",
    };
    println!("  File: {path}");
    println!("  Type: {kind}    Inode: {}    Size: {}", st.id, st.length);
    println!(
        "Access: ({:04o}/{})  Owner: {}  Group: {}",
        st.permission,
        mode_string(st.kind, st.permission),
        st.owner,
        st.group
    );
    println!(
        "Modify: {}    Access: {}",
        short_time(st.mtime_ms),
        short_time(st.atime_ms)
    );
    println!("Policy: {}", st.storage_policy);
    if st.is_dir() {
        println!("Children: {}", st.children);
    }
    if st.under_construction {
        println!("Under construction, lease held by {}", st.lease_holder);
    }
    if !st.symlink_target.is_empty() {
        println!("Target: {}", st.symlink_target);
    }
    Ok(())
}

/// `fs mv SRC DST`: into DST when DST is a directory, as `hdfs dfs -mv` does.
pub async fn mv(client: &Client, src: &str, dst: &str) -> Result<()> {
    let target = match client.stat(dst).await {
        Ok(d) if d.is_dir() => {
            let name = src
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            join(dst, name)
        }
        Ok(_) => dst.to_owned(),
        Err(e) if e.is(ErrorKind::NotFound) => dst.to_owned(),
        Err(e) => return Err(e.into()),
    };
    client.rename(src, &target, false).await?;
    Ok(())
}

/// `fs rm [-r]`.
pub async fn rm(client: &Client, path: &str, recursive: bool) -> Result<()> {
    match client.delete(path, recursive).await {
        Ok(_) => {
            println!("Deleted {path}");
            Ok(())
        }
        Err(
            e @ ClientError::Refused {
                kind: ErrorKind::DirectoryNotEmpty,
                ..
            },
        ) => Err(anyhow::anyhow!(
            "{e} (use -r to delete it and everything below it)"
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_print_like_ls() {
        assert_eq!(mode_string(FileKind::Directory, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(FileKind::File, 0o640), "-rw-r-----");
        assert_eq!(mode_string(FileKind::Symlink, 0o777), "lrwxrwxrwx");
        assert_eq!(short_time(0), "1970-01-01 00:00");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/d", "a"), "/d/a");
    }
}

/// What `fs setfattr` does.
#[derive(Debug)]
pub enum XattrChange {
    /// Sets `name`; with `expect`, only if it holds that value (`Some(None)`: is absent).
    Set {
        name: String,
        value: String,
        expect: Option<Option<String>>,
    },
    Append(String, String),
    Remove(String),
}

/// `fs setfattr`.
pub async fn setfattr(client: &Client, path: &str, change: XattrChange) -> Result<()> {
    match change {
        XattrChange::Set {
            name,
            value,
            expect,
        } => {
            let expect = expect.as_ref().map(|e| e.as_deref().map(str::as_bytes));
            client
                .set_xattr(path, &name, value.as_bytes(), expect)
                .await?;
        }
        XattrChange::Append(name, value) => {
            client.append_xattr(path, &name, value.as_bytes()).await?;
        }
        XattrChange::Remove(name) => client.remove_xattr(path, &name).await?,
    }
    Ok(())
}

/// A value as `hdfs dfs -getfattr` shows it: quoted text, or hex when it is not text.
pub fn xattr_value(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
        _ => {
            let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

/// `fs getfattr`: one attribute, or all of them.
pub async fn getfattr(client: &Client, path: &str, name: Option<&str>) -> Result<()> {
    let names: Vec<String> = name.map(str::to_owned).into_iter().collect();
    let attrs = client.get_xattrs(path, &names).await?;
    println!("# file: {path}");
    for (n, v) in attrs {
        println!("{n}={}", xattr_value(&v));
    }
    Ok(())
}

/// A change of `fs chmod`, `fs chown` or `fs chgrp`.
#[derive(Debug, Clone)]
pub enum AttrChange {
    /// An octal mode (`755`, `1777`).
    Mode(u32),
    /// A new owner and/or group (`chown OWNER[:GROUP]`, `chgrp GROUP`).
    Owner {
        owner: Option<String>,
        group: Option<String>,
    },
}

impl AttrChange {
    /// `chmod`'s MODE: octal digits up to `7777`.
    pub fn mode(text: &str) -> Result<Self> {
        u32::from_str_radix(text, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(AttrChange::Mode)
            .ok_or_else(|| anyhow::anyhow!("{text:?} is not an octal mode (e.g. 755, 1777)"))
    }

    /// `chown`'s OWNER[:GROUP].
    pub fn owner(text: &str) -> Result<Self> {
        let (owner, group) = match text.split_once(':') {
            Some((o, g)) => (o, Some(g)),
            None => (text, None),
        };
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let change = AttrChange::Owner {
            owner: some(owner),
            group: group.and_then(some),
        };
        match &change {
            AttrChange::Owner {
                owner: None,
                group: None,
            } => anyhow::bail!("{text:?} names neither an owner nor a group"),
            _ => Ok(change),
        }
    }
}

/// `fs chmod|chown|chgrp [-R] PATHS...`: [`change_attrs`] on each path in turn, the first
/// failure named by `command` and its path.
pub async fn change_all(
    client: &Client,
    command: &str,
    paths: &[String],
    change: &AttrChange,
    recursive: bool,
) -> Result<()> {
    for p in paths {
        change_attrs(client, p, change, recursive)
            .await
            .with_context(|| format!("{command} {p}"))?;
    }
    Ok(())
}

/// `fs chmod|chown|chgrp [-R]`: applies `change` to `path` and, with `recursive`, to
/// everything below it (depth first, a page of each directory at a time).
pub async fn change_attrs(
    client: &Client,
    path: &str,
    change: &AttrChange,
    recursive: bool,
) -> Result<()> {
    let status = apply_change(client, path, change).await?;
    if !recursive || status.kind != FileKind::Directory {
        return Ok(());
    }
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let mut after = String::new();
        loop {
            let page = client.list_page(&dir, &after, 0).await?;
            for e in &page.entries {
                let child = join(&dir, &e.name);
                apply_change(client, &child, change).await?;
                if e.kind == FileKind::Directory {
                    stack.push(child);
                }
            }
            match page.entries.last() {
                Some(last) if page.has_more => after = last.name.clone(),
                _ => break,
            }
        }
    }
    Ok(())
}

async fn apply_change(client: &Client, path: &str, change: &AttrChange) -> Result<FileStatus> {
    Ok(match change {
        AttrChange::Mode(m) => client.set_permission(path, *m).await?,
        AttrChange::Owner { owner, group } => {
            client
                .set_owner(
                    path,
                    owner.as_deref().unwrap_or(""),
                    group.as_deref().unwrap_or(""),
                )
                .await?
        }
    })
}
