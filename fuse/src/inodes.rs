//! The mount's inode numbers. The kernel names every file by a number the file system hands
//! out at lookup and takes back at `forget`; raftfs names files by path. The table keeps each
//! entry the kernel knows as (parent number, name), so that a path is rebuilt by walking up
//! and a rename moves a whole subtree by changing one entry. Numbers are never reused while
//! the mount lives, so every generation is 0.

use std::collections::HashMap;

/// The root directory's number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT: u64 = 1;

#[derive(Debug)]
struct Node {
    parent: u64,
    name: String,
    /// The namespace's inode id the entry was last seen with: a lookup that finds another
    /// object under the same name (replaced by another client) gets a new number.
    id: u64,
    /// Lookups the kernel holds (it gives them back with `forget`).
    lookups: u64,
    /// Still reachable by its name (false once unlinked or renamed over).
    linked: bool,
}

/// Inode numbers to entries, and entries to numbers.
#[derive(Debug)]
pub struct Inodes {
    nodes: HashMap<u64, Node>,
    by_name: HashMap<(u64, String), u64>,
    next: u64,
}

impl Default for Inodes {
    fn default() -> Self {
        Self::new()
    }
}

impl Inodes {
    /// A table with the root only.
    pub fn new() -> Self {
        let root = Node {
            parent: ROOT,
            name: String::new(),
            id: 0,
            lookups: 1,
            linked: true,
        };
        Self {
            nodes: HashMap::from([(ROOT, root)]),
            by_name: HashMap::new(),
            next: ROOT + 1,
        }
    }

    /// The path of `ino`, or `None` when it is unknown or no longer reachable by name.
    pub fn path(&self, ino: u64) -> Option<String> {
        let mut names = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let node = self.nodes.get(&at)?;
            if !node.linked {
                return None;
            }
            names.push(node.name.as_str());
            at = node.parent;
        }
        if names.is_empty() {
            return Some("/".to_owned());
        }
        let mut path = String::new();
        for name in names.iter().rev() {
            path.push('/');
            path.push_str(name);
        }
        Some(path)
    }

    /// The path of `name` in directory `parent`.
    pub fn child_path(&self, parent: u64, name: &str) -> Option<String> {
        let dir = self.path(parent)?;
        Some(join(&dir, name))
    }

    /// The number of `name` in `parent` for an object of namespace id `id`, with one more
    /// lookup held by the kernel: the same number while the entry is the same object.
    pub fn remember(&mut self, parent: u64, name: &str, id: u64) -> u64 {
        let key = (parent, name.to_owned());
        if let Some(&ino) = self.by_name.get(&key)
            && let Some(node) = self.nodes.get_mut(&ino)
        {
            if node.id == id {
                node.lookups += 1;
                return ino;
            }
            // Another object under the same name: the old number stays for the kernel's
            // references, and no longer resolves to a path.
            node.linked = false;
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                parent,
                name: name.to_owned(),
                id,
                lookups: 1,
                linked: true,
            },
        );
        self.by_name.insert(key, ino);
        ino
    }

    /// The kernel gives back `n` lookups of `ino`; the entry goes with the last.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups > 0 {
            return;
        }
        if let Some(node) = self.nodes.remove(&ino) {
            let key = (node.parent, node.name);
            if self.by_name.get(&key) == Some(&ino) {
                self.by_name.remove(&key);
            }
        }
    }

    /// `name` left `parent` (unlinked, or removed as a directory).
    pub fn unlinked(&mut self, parent: u64, name: &str) {
        if let Some(ino) = self.by_name.remove(&(parent, name.to_owned()))
            && let Some(node) = self.nodes.get_mut(&ino)
        {
            node.linked = false;
        }
    }

    /// `name` in `parent` is now `new_name` in `new_parent`, replacing what was there.
    pub fn renamed(&mut self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        self.unlinked(new_parent, new_name);
        let Some(ino) = self.by_name.remove(&(parent, name.to_owned())) else {
            return;
        };
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.parent = new_parent;
            node.name = new_name.to_owned();
        }
        self.by_name.insert((new_parent, new_name.to_owned()), ino);
    }

    /// The number of `name` in `parent`, if the kernel holds one (no lookup taken).
    pub fn peek(&self, parent: u64, name: &str) -> Option<u64> {
        self.by_name.get(&(parent, name.to_owned())).copied()
    }

    /// The directory `ino` is in (the root's is the root).
    pub fn parent(&self, ino: u64) -> Option<u64> {
        self.nodes.get(&ino).map(|n| n.parent)
    }

    /// The entry of `ino` is now namespace object `id` (the mount replaced the file).
    pub fn set_id(&mut self, ino: u64, id: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.id = id;
        }
    }

    /// Entries the kernel holds (the root included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the root is known.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }
}

/// `dir`/`name`.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_rebuilt_from_parents() {
        let mut t = Inodes::new();
        assert_eq!(t.path(ROOT).as_deref(), Some("/"));
        let a = t.remember(ROOT, "a", 10);
        let b = t.remember(a, "b", 11);
        assert_eq!(t.path(b).as_deref(), Some("/a/b"));
        assert_eq!(t.child_path(b, "c").as_deref(), Some("/a/b/c"));
        assert_eq!(t.path(999), None);
    }

    #[test]
    fn the_same_object_keeps_its_number_and_another_gets_a_new_one() {
        let mut t = Inodes::new();
        let a = t.remember(ROOT, "a", 10);
        assert_eq!(t.remember(ROOT, "a", 10), a);
        let replaced = t.remember(ROOT, "a", 20);
        assert_ne!(replaced, a);
        assert_eq!(t.path(a), None, "the old number no longer names a path");
        assert_eq!(t.path(replaced).as_deref(), Some("/a"));
    }

    #[test]
    fn a_rename_moves_the_subtree_and_replaces_the_target() {
        let mut t = Inodes::new();
        let d = t.remember(ROOT, "d", 1);
        let f = t.remember(d, "f", 2);
        let target = t.remember(ROOT, "e", 3);
        t.renamed(ROOT, "d", ROOT, "e");
        assert_eq!(t.path(f).as_deref(), Some("/e/f"));
        assert_eq!(t.path(target), None);
        assert_eq!(t.remember(ROOT, "e", 1), d);
    }

    #[test]
    fn forget_drops_an_entry_after_its_last_lookup() {
        let mut t = Inodes::new();
        let a = t.remember(ROOT, "a", 10);
        t.remember(ROOT, "a", 10);
        t.forget(a, 1);
        assert_eq!(t.path(a).as_deref(), Some("/a"));
        t.forget(a, 1);
        assert_eq!(t.path(a), None);
        assert!(t.is_empty());
        t.forget(ROOT, 5);
        assert_eq!(t.path(ROOT).as_deref(), Some("/"));
    }

    #[test]
    fn an_unlinked_entry_keeps_its_number_until_forgotten() {
        let mut t = Inodes::new();
        let a = t.remember(ROOT, "a", 10);
        t.unlinked(ROOT, "a");
        assert_eq!(t.path(a), None);
        assert_eq!(t.len(), 2);
        let b = t.remember(ROOT, "a", 11);
        t.forget(a, 1);
        assert_eq!(
            t.path(b).as_deref(),
            Some("/a"),
            "forgetting the old one keeps the new"
        );
    }
}
