//! Paths across the router: a federated path in, the nameservice's path out, and what comes
//! back (a path in a reply, a listing, an inode at a mount point) in the federated tree.

use raftfs_core::namespace::NsPath;
use raftfs_proto as pb;

use crate::error::RouterError;

/// A path from a request.
pub fn parse(path: &str) -> Result<NsPath, RouterError> {
    NsPath::parse(path).map_err(|e| RouterError::InvalidPath {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// `p`, which is `from` or below it, moved to below `to` (`None` when `p` is not).
pub fn rebase(p: &NsPath, from: &NsPath, to: &NsPath) -> Option<NsPath> {
    if p != from && !p.is_strictly_under(from) {
        return None;
    }
    let below = &p.components()[from.components().len()..];
    Some(below.iter().fold(to.clone(), |q, c| q.child(c)))
}

/// A path of a reply (in the nameservice's tree, at or below `ns_base`) in the federated
/// tree (below `federated_base`); kept as it is when it is elsewhere or unreadable.
pub fn back(reply_path: &str, ns_base: &NsPath, federated_base: &NsPath) -> String {
    NsPath::parse(reply_path)
        .ok()
        .and_then(|p| rebase(&p, ns_base, federated_base))
        .map_or_else(|| reply_path.to_owned(), |p| p.to_string())
}

/// An inode reached at a mount point bears the mount point's name (`/logs -> ns2:/` is
/// ns2's root, which has none).
pub fn name_as_mounted(inode: &mut pb::Inode, federated: &NsPath) {
    if let Some(name) = federated.name()
        && inode.name != name
    {
        inode.name = name.to_owned();
    }
}

/// Owner of the directories a router shows for mount points and the directories leading to
/// them (HDFS's router shows mount points with the table's attributes, not the target's).
pub const MOUNT_OWNER: &str = "raftfs";

/// A mount point, or a directory that only leads to mount points (`children` of them), as
/// a listing or `stat` shows it.
pub fn mount_dir(name: &str, children: u64) -> pb::Inode {
    pb::Inode {
        name: name.to_owned(),
        children,
        kind: pb::InodeKind::Directory as i32,
        permission: 0o755,
        owner: MOUNT_OWNER.to_owned(),
        group: MOUNT_OWNER.to_owned(),
        ..Default::default()
    }
}

/// One page of a listing of a directory of the federated tree: its nameservice's page (none
/// when no nameservice holds the directory) with the mount points directly below it, in
/// name order, a mount point taking the place of an entry of the same name. Names after
/// `start_after` only; a mount point past the last name of a page that has more waits for
/// its page; at most `limit` entries (0: no limit of the router's own).
pub fn merge_listing(
    page: Option<(Vec<pb::Inode>, bool)>,
    mounts: &[String],
    start_after: &str,
    limit: u32,
) -> (Vec<pb::Inode>, bool) {
    let (mut entries, more) = page.unwrap_or_default();
    let last = entries.last().map(|e| e.name.clone());
    entries.retain(|e| !mounts.contains(&e.name));
    for m in mounts {
        let in_range = m.as_str() > start_after
            && (!more || last.as_ref().is_some_and(|l| m.as_str() <= l.as_str()));
        if in_range {
            entries.push(mount_dir(m, 0));
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut has_more = more;
    let limit = limit as usize;
    if limit > 0 && entries.len() > limit {
        entries.truncate(limit);
        has_more = true;
    }
    (entries, has_more)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> NsPath {
        NsPath::parse(s).expect("path")
    }

    fn file(name: &str) -> pb::Inode {
        pb::Inode {
            name: name.into(),
            kind: pb::InodeKind::File as i32,
            ..Default::default()
        }
    }

    #[test]
    fn paths_move_between_the_trees_both_ways() {
        assert_eq!(
            rebase(&p("/logs/a/b"), &p("/logs"), &p("/")),
            Some(p("/a/b"))
        );
        assert_eq!(rebase(&p("/logs"), &p("/logs"), &p("/")), Some(p("/")));
        assert_eq!(
            rebase(&p("/a/b"), &p("/"), &p("/logs")),
            Some(p("/logs/a/b"))
        );
        assert_eq!(rebase(&p("/logsx"), &p("/logs"), &p("/")), None);
        assert_eq!(back("/a/b", &p("/"), &p("/logs")), "/logs/a/b");
        assert_eq!(back("not a path", &p("/"), &p("/logs")), "not a path");
    }

    #[test]
    fn an_inode_at_a_mount_point_bears_its_name() {
        let mut root = pb::Inode::default();
        name_as_mounted(&mut root, &p("/logs"));
        assert_eq!(root.name, "logs");
        let mut top = pb::Inode::default();
        name_as_mounted(&mut top, &p("/"));
        assert_eq!(top.name, "");
    }

    #[test]
    fn a_mount_point_past_a_page_with_more_waits_for_its_page() {
        let page = Some((vec![file("a"), file("c")], true));
        let mounts = vec!["b".to_owned(), "z".to_owned()];
        let (entries, more) = merge_listing(page, &mounts, "", 0);
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(more);
        let (entries, more) = merge_listing(Some((vec![], false)), &mounts, "c", 0);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "z");
        assert!(!more);
    }

    proptest! {
        /// Paging through a merged listing a page at a time, as a client does (each page
        /// from the last name of the previous one), shows every name once, in order, each
        /// mount point as a directory: whatever the page sizes.
        #[test]
        fn paging_shows_every_name_once(
            files in proptest::collection::btree_set("[a-e]{1,2}", 0..12),
            mounts in proptest::collection::btree_set("[a-e]{1,2}", 0..5),
            ns_page in 1usize..5,
            limit in 0u32..4,
        ) {
            let files: Vec<String> = files.into_iter().collect();
            let mounts: Vec<String> = mounts.into_iter().collect();
            let mut seen: Vec<pb::Inode> = Vec::new();
            let mut after = String::new();
            for _ in 0..100 {
                // The nameservice's page: names after `after`, at most ns_page of them.
                let rest: Vec<&String> = files.iter().filter(|f| f.as_str() > after.as_str()).collect();
                let more = rest.len() > ns_page;
                let page: Vec<pb::Inode> = rest.iter().take(ns_page).map(|f| file(f)).collect();
                let (entries, has_more) = merge_listing(Some((page, more)), &mounts, &after, limit);
                if let Some(last) = entries.last() {
                    after = last.name.clone();
                }
                let empty = entries.is_empty();
                seen.extend(entries);
                if !has_more {
                    break;
                }
                prop_assert!(!empty, "a page with more must not be empty");
            }
            let mut want: Vec<String> = files.iter().chain(mounts.iter()).cloned().collect();
            want.sort();
            want.dedup();
            let names: Vec<String> = seen.iter().map(|e| e.name.clone()).collect();
            prop_assert_eq!(&names, &want);
            for e in &seen {
                let is_mount = mounts.contains(&e.name);
                prop_assert_eq!(e.kind == pb::InodeKind::Directory as i32, is_mount);
            }
        }
    }
}
