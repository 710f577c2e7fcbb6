//! The namespace's reference model: the semantics of the core operations written down as
//! plainly as possible, over a map from path to node, with no storage, no inode numbers and
//! no write overlay. The property test `metaserver/tests/namespace_model.rs` runs random
//! operation sequences against it and against the RocksDB state machine and asks that every
//! result and the final tree agree; it is public so that other checkers can use it too.

use std::collections::BTreeMap;

use crate::namespace::{NsError, NsPath, Op};

/// A path as its components (the root is empty).
pub type P = Vec<String>;

/// What a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { holder: Option<String>, length: u64 },
}

/// One file or directory of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub permission: u16,
}

/// The model: a map from path to node, with the semantics written down plainly.
#[derive(Clone, Debug)]
pub struct Model {
    /// Every node by path, the root included.
    pub nodes: BTreeMap<P, Node>,
}

fn s(p: &[String]) -> String {
    NsPath::parse(&format!("/{}", p.join("/")))
        .map(|p| p.to_string())
        .unwrap_or_default()
}

impl Model {
    /// A namespace holding only the root directory.
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            Vec::new(),
            Node {
                kind: Kind::Dir,
                permission: 0o755,
            },
        );
        Self { nodes }
    }

    fn is_dir(&self, p: &[String]) -> bool {
        matches!(
            self.nodes.get(p),
            Some(Node {
                kind: Kind::Dir,
                ..
            })
        )
    }

    fn children(&self, p: &[String]) -> usize {
        self.nodes
            .keys()
            .filter(|k| k.len() == p.len() + 1 && k.starts_with(p))
            .count()
    }

    fn resolve(&self, p: &[String]) -> Result<(), NsError> {
        for i in 1..=p.len() {
            if !self.is_dir(&p[..i - 1]) {
                return Err(NsError::NotADirectory(s(&p[..i - 1])));
            }
            if !self.nodes.contains_key(&p[..i]) {
                return Err(NsError::NotFound(s(p)));
            }
        }
        Ok(())
    }

    fn resolve_parent(&self, p: &[String]) -> Result<(), NsError> {
        let parent = &p[..p.len() - 1];
        match self.resolve(parent) {
            Err(NsError::NotFound(_)) => Err(NsError::ParentNotFound(s(p))),
            Err(e) => Err(e),
            Ok(()) if !self.is_dir(parent) => Err(NsError::NotADirectory(s(parent))),
            Ok(()) => Ok(()),
        }
    }

    fn remove_subtree(&mut self, p: &[String]) {
        self.nodes.retain(|k, _| !k.starts_with(p));
    }

    /// Applies `op`: `Ok`, or the kind of the refusal ([`NsError::kind`]); a refused
    /// operation changes nothing.
    pub fn apply(&mut self, op: &ModelOp) -> Result<(), &'static str> {
        let before = self.nodes.clone();
        let r = self.apply_inner(op);
        if r.is_err() {
            self.nodes = before;
        }
        r.map_err(|e| e.kind())
    }

    fn apply_inner(&mut self, op: &ModelOp) -> Result<(), NsError> {
        match op {
            ModelOp::Mkdir { p, parents } => {
                if p.is_empty() {
                    return if *parents {
                        Ok(())
                    } else {
                        Err(NsError::AlreadyExists("/".into()))
                    };
                }
                if *parents {
                    for i in 1..=p.len() {
                        match self.nodes.get(&p[..i]) {
                            Some(Node {
                                kind: Kind::Dir, ..
                            }) => {}
                            Some(_) if i == p.len() => return Err(NsError::AlreadyExists(s(p))),
                            Some(_) => return Err(NsError::NotADirectory(s(&p[..i]))),
                            None => {
                                self.nodes.insert(
                                    p[..i].to_vec(),
                                    Node {
                                        kind: Kind::Dir,
                                        permission: 0o755,
                                    },
                                );
                            }
                        }
                    }
                    return Ok(());
                }
                self.resolve_parent(p)?;
                if self.nodes.contains_key(p) {
                    return Err(NsError::AlreadyExists(s(p)));
                }
                self.nodes.insert(
                    p.clone(),
                    Node {
                        kind: Kind::Dir,
                        permission: 0o755,
                    },
                );
                Ok(())
            }
            ModelOp::Create {
                p,
                overwrite,
                holder,
            } => {
                if p.is_empty() {
                    return Err(NsError::IsADirectory("/".into()));
                }
                self.resolve_parent(p)?;
                if let Some(existing) = self.nodes.get(p) {
                    match &existing.kind {
                        Kind::Dir => return Err(NsError::IsADirectory(s(p))),
                        Kind::File { .. } if !overwrite => {
                            return Err(NsError::AlreadyExists(s(p)));
                        }
                        Kind::File {
                            holder: Some(h), ..
                        } if h != holder => {
                            return Err(NsError::LeaseConflict {
                                path: s(p),
                                holder: h.clone(),
                            });
                        }
                        Kind::File { .. } => {}
                    }
                }
                let file = Kind::File {
                    holder: Some(holder.clone()),
                    length: 0,
                };
                self.nodes.insert(
                    p.clone(),
                    Node {
                        kind: file,
                        permission: 0o644,
                    },
                );
                Ok(())
            }
            ModelOp::Complete { p, holder, length } => {
                self.resolve(p)?;
                let node = self
                    .nodes
                    .get_mut(p)
                    .ok_or_else(|| NsError::NotFound(s(p)))?;
                match &node.kind {
                    Kind::Dir => Err(NsError::IsADirectory(s(p))),
                    Kind::File { holder: None, .. } => Err(NsError::NotUnderConstruction(s(p))),
                    Kind::File {
                        holder: Some(h), ..
                    } if h != holder => Err(NsError::LeaseConflict {
                        path: s(p),
                        holder: h.clone(),
                    }),
                    // Without block groups (the model writes none) a file holds 0 bytes, and
                    // completing it at any other length is refused.
                    Kind::File { length: have, .. } if have != length => {
                        Err(NsError::InvalidArgument(s(p)))
                    }
                    Kind::File { .. } => {
                        node.kind = Kind::File {
                            holder: None,
                            length: *length,
                        };
                        Ok(())
                    }
                }
            }
            ModelOp::Rename {
                src,
                dst,
                overwrite,
            } => {
                if src.is_empty() {
                    return Err(NsError::RootNotAllowed(s(src)));
                }
                if dst.is_empty() {
                    return Err(NsError::RootNotAllowed(s(dst)));
                }
                self.resolve(src)?;
                if src == dst {
                    return Ok(());
                }
                if dst.len() > src.len() && dst.starts_with(src) {
                    return Err(NsError::RenameIntoSubtree {
                        src: s(src),
                        dst: s(dst),
                    });
                }
                self.resolve_parent(dst)?;
                if self.nodes.contains_key(dst) {
                    if !overwrite {
                        return Err(NsError::AlreadyExists(s(dst)));
                    }
                    match (self.is_dir(src), self.is_dir(dst)) {
                        (true, false) => return Err(NsError::NotADirectory(s(dst))),
                        (false, true) => return Err(NsError::IsADirectory(s(dst))),
                        (true, true) if self.children(dst) > 0 => {
                            return Err(NsError::DirectoryNotEmpty(s(dst)));
                        }
                        _ => {}
                    }
                    self.remove_subtree(dst);
                }
                let moved: Vec<(P, Node)> = self
                    .nodes
                    .iter()
                    .filter(|(k, _)| k.starts_with(src))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.remove_subtree(src);
                for (k, v) in moved {
                    let mut nk = dst.clone();
                    nk.extend_from_slice(&k[src.len()..]);
                    self.nodes.insert(nk, v);
                }
                Ok(())
            }
            ModelOp::Delete { p, recursive } => {
                if p.is_empty() {
                    return Err(NsError::RootNotAllowed("/".into()));
                }
                self.resolve(p)?;
                if self.is_dir(p) && self.children(p) > 0 && !recursive {
                    return Err(NsError::DirectoryNotEmpty(s(p)));
                }
                self.remove_subtree(p);
                Ok(())
            }
            ModelOp::Chmod { p, permission } => {
                if *permission > 0o7777 {
                    return Err(NsError::InvalidArgument("permission".into()));
                }
                self.resolve(p)?;
                if let Some(n) = self.nodes.get_mut(p) {
                    n.permission = *permission;
                }
                Ok(())
            }
        }
    }
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

/// The operations the model knows, over paths given as components.
#[derive(Clone, Debug)]
pub enum ModelOp {
    Mkdir {
        p: P,
        parents: bool,
    },
    Create {
        p: P,
        overwrite: bool,
        holder: String,
    },
    Complete {
        p: P,
        holder: String,
        length: u64,
    },
    Rename {
        src: P,
        dst: P,
        overwrite: bool,
    },
    Delete {
        p: P,
        recursive: bool,
    },
    Chmod {
        p: P,
        permission: u16,
    },
}

/// The namespace path of components `p` (the root when they do not form a valid path).
pub fn ns(p: &[String]) -> NsPath {
    NsPath::parse(&format!("/{}", p.join("/"))).unwrap_or_else(|_| NsPath::root())
}

impl ModelOp {
    /// The journaled operation this model operation stands for.
    pub fn to_op(&self) -> Op {
        match self {
            ModelOp::Mkdir { p, parents } => Op::Mkdir {
                path: ns(p),
                parents: *parents,
                permission: 0o755,
                owner: "u".into(),
                group: None,
            },
            ModelOp::Create {
                p,
                overwrite,
                holder,
            } => Op::Create {
                path: ns(p),
                overwrite: *overwrite,
                create_parents: false,
                permission: 0o644,
                owner: "u".into(),
                group: None,
                policy: None,
                holder: holder.clone(),
                block_size: 1 << 20,
            },
            ModelOp::Complete { p, holder, length } => Op::Complete {
                path: ns(p),
                holder: holder.clone(),
                length: *length,
            },
            ModelOp::Rename {
                src,
                dst,
                overwrite,
            } => Op::Rename {
                src: ns(src),
                dst: ns(dst),
                overwrite: *overwrite,
            },
            ModelOp::Delete { p, recursive } => Op::Delete {
                path: ns(p),
                recursive: *recursive,
            },
            ModelOp::Chmod { p, permission } => Op::SetPermission {
                path: ns(p),
                permission: *permission,
            },
        }
    }
}
