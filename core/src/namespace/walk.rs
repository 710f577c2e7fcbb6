//! A depth-first walk of a subtree that holds one page of directory entries per level, never
//! a whole directory or subtree, and that can stop after a number of entries and resume from
//! the path of the last one it visited. `fsck` answers in pages this way (each page a bounded
//! amount of work and reply) and `content_summary` counts a tree of any size in bounded
//! memory. Like HDFS's fsck, a walk in pages is not one point-in-time view: each page reads
//! the namespace as it is then, and a tree renamed away between pages is not visited.

use std::collections::VecDeque;

use super::error::{ApplyError, NsError, StoreError};
use super::inode::{Inode, InodeId};
use super::keys;
use super::kv::{Cf, KvRead};
use super::path::NsPath;
use super::tree::{Result, child_id, load_inode, lookup, resolve};

/// Directory entries read at once per level of the walk.
const WALK_PAGE: usize = 256;

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Walked {
    /// Every entry of the subtree was visited.
    Done,
    /// The walk stopped after visiting the entry at this path: resume after it.
    StoppedAfter(String),
}

/// One directory being walked: where its listing stands, and the entries read but not
/// visited yet.
struct Frame {
    dir: InodeId,
    path: String,
    /// The last directory entry read (its key), or the name to resume after.
    after: Option<Vec<u8>>,
    page: VecDeque<(String, InodeId)>,
    listed: bool,
}

impl Frame {
    fn new(dir: InodeId, path: String) -> Self {
        Self {
            dir,
            path,
            after: None,
            page: VecDeque::new(),
            listed: false,
        }
    }

    /// The next entry of this directory, reading a page when the last one is used up.
    fn next<R: KvRead + ?Sized>(&mut self, kv: &R) -> Result<Option<(String, InodeId)>> {
        if self.page.is_empty() && !self.listed {
            let prefix = keys::dentry_prefix(self.dir);
            let page = kv.scan(Cf::Dentries, &prefix, self.after.as_deref(), WALK_PAGE)?;
            self.listed = page.len() < WALK_PAGE;
            self.after = page.last().map(|(k, _)| k.clone()).or(self.after.take());
            for (k, v) in page {
                let name = keys::dentry_name(&k).ok_or_else(|| {
                    ApplyError::Store(StoreError::Corrupt {
                        cf: "dentries",
                        reason: "bad name".into(),
                    })
                })?;
                self.page.push_back((name.to_owned(), child_id(&v)?));
            }
        }
        Ok(self.page.pop_front())
    }

    fn child_path(&self, name: &str) -> String {
        if self.path == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.path)
        }
    }
}

/// Visits `root` and everything below it in depth-first pre-order, children in name order,
/// calling `f` with each entry's path and inode; stops after `limit` entries. `after` (the
/// path a previous walk of the same root stopped after: `root` or below it) resumes where
/// that walk stopped: root is not visited again, and entries removed since are skipped over.
pub fn walk<R: KvRead + ?Sized>(
    kv: &R,
    root: &NsPath,
    after: Option<&NsPath>,
    limit: usize,
    mut f: impl FnMut(&str, &Inode) -> Result<()>,
) -> Result<Walked> {
    let limit = limit.max(1);
    let top = resolve(kv, root)?;
    let mut visited = 0usize;
    let mut stack = match after {
        None => {
            let path = root.to_string();
            f(&path, &top)?;
            visited += 1;
            if !top.is_dir() {
                return Ok(Walked::Done);
            }
            if visited >= limit {
                return Ok(Walked::StoppedAfter(path));
            }
            vec![Frame::new(top.id, path)]
        }
        Some(after) => resume(kv, root, &top, after)?,
    };
    while let Some(frame) = stack.last_mut() {
        let Some((name, id)) = frame.next(kv)? else {
            stack.pop();
            continue;
        };
        // An entry whose inode is gone is a reader racing nothing (one view per page); a
        // dangling entry is the store's corruption, which `load_inode` cannot tell apart
        // here, so it is skipped rather than failing a whole fsck.
        let Some(node) = load_inode(kv, id)? else {
            continue;
        };
        let path = frame.child_path(&name);
        f(&path, &node)?;
        visited += 1;
        if visited >= limit {
            return Ok(Walked::StoppedAfter(path));
        }
        if node.is_dir() {
            stack.push(Frame::new(node.id, path));
        }
    }
    Ok(Walked::Done)
}

/// The stack of a walk of `root` that visited `after` last: each directory on the way to it
/// resumes after the name that leads there; the walk goes on inside `after` itself when it
/// is a directory (pre-order: its entries come next). Where the way no longer exists, the
/// walk goes on in the deepest directory that does, after the missing name.
fn resume<R: KvRead + ?Sized>(
    kv: &R,
    root: &NsPath,
    top: &Inode,
    after: &NsPath,
) -> Result<Vec<Frame>> {
    if after != root && !after.is_strictly_under(root) {
        return Err(NsError::InvalidArgument(format!(
            "a walk of {root} cannot resume after {after}, which is not below it"
        ))
        .into());
    }
    if !top.is_dir() {
        return Ok(Vec::new());
    }
    let mut stack = vec![Frame::new(top.id, root.to_string())];
    for name in &after.components()[root.components().len()..] {
        let Some(frame) = stack.last_mut() else { break };
        frame.after = Some(keys::dentry(frame.dir, name));
        let Some(id) = lookup(kv, frame.dir, name)? else {
            break;
        };
        match load_inode(kv, id)? {
            Some(node) if node.is_dir() => {
                let path = frame.child_path(name);
                stack.push(Frame::new(node.id, path));
            }
            _ => break,
        }
    }
    Ok(stack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::kv::MemKv;
    use crate::namespace::tests::Ns;

    fn tree(dirs: &[&str], files: &[&str]) -> Ns {
        let mut ns = Ns::new();
        for d in dirs {
            ns.mkdir(d, false).expect("mkdir");
        }
        for f in files {
            ns.file(f);
        }
        ns
    }

    fn paths_in_pages(kv: &MemKv, root: &str, limit: usize) -> (Vec<String>, usize) {
        let root = NsPath::parse(root).expect("path");
        let mut out = Vec::new();
        let mut after: Option<NsPath> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            let walked = walk(kv, &root, after.as_ref(), limit, |p, _| {
                out.push(p.to_owned());
                Ok(())
            })
            .expect("walk");
            match walked {
                Walked::Done => return (out, pages),
                Walked::StoppedAfter(p) => after = Some(NsPath::parse(&p).expect("path")),
            }
        }
    }

    /// A tree walked in pages of every size from 1 up visits exactly what one walk visits,
    /// in the same order, with pages of at most `limit` entries.
    #[test]
    fn a_walk_in_pages_visits_what_one_walk_visits() {
        let ns = tree(
            &["/a", "/a/b", "/a/b/c", "/a/e", "/z"],
            &["/a/b/c/f1", "/a/b/f2", "/a/d", "/a/e/f3", "/y", "/z/f4"],
        );
        let kv = &ns.kv;
        let (all, pages) = paths_in_pages(kv, "/", usize::MAX);
        assert_eq!(pages, 1);
        assert_eq!(
            all,
            [
                "/",
                "/a",
                "/a/b",
                "/a/b/c",
                "/a/b/c/f1",
                "/a/b/f2",
                "/a/d",
                "/a/e",
                "/a/e/f3",
                "/y",
                "/z",
                "/z/f4"
            ]
        );
        for limit in 1..=all.len() {
            let (paged, pages) = paths_in_pages(kv, "/", limit);
            assert_eq!(paged, all, "limit {limit}");
            assert!(
                pages <= all.len() / limit + 1,
                "limit {limit}: {pages} pages"
            );
        }
        let (sub, _) = paths_in_pages(kv, "/a/b", 2);
        assert_eq!(sub, ["/a/b", "/a/b/c", "/a/b/c/f1", "/a/b/f2"]);
        let (file, _) = paths_in_pages(kv, "/y", 1);
        assert_eq!(file, ["/y"]);
    }

    /// A walk resumed after an entry that was removed since goes on with what followed it,
    /// in the deepest directory that still exists; a resume point outside the root is
    /// refused.
    #[test]
    fn a_walk_resumes_past_removed_entries() {
        let ns = tree(&["/a", "/a/b", "/c"], &["/a/b/x", "/a/y", "/c/z"]);
        let kv = &ns.kv;
        let root = NsPath::root();
        let gone = NsPath::parse("/a/b/zz/deeper").expect("path");
        let mut seen = Vec::new();
        let walked = walk(kv, &root, Some(&gone), usize::MAX, |p, _| {
            seen.push(p.to_owned());
            Ok(())
        })
        .expect("walk");
        assert_eq!(walked, Walked::Done);
        assert_eq!(seen, ["/a/y", "/c", "/c/z"]);
        let outside = NsPath::parse("/c/z").expect("path");
        let sub = NsPath::parse("/a").expect("path");
        assert!(matches!(
            walk(kv, &sub, Some(&outside), 10, |_, _| Ok(())),
            Err(ApplyError::Ns(NsError::InvalidArgument(_)))
        ));
    }
}
