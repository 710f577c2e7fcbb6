//! Federation (DESIGN §10): several independent namespaces ("nameservices"), each its own
//! Raft group, share one fleet of blockservers; clients see one tree through a mount table.
//!
//! This module is the part every component shares, with no I/O: a nameservice's name
//! ([`NameserviceId`]) and the mount table
//! ([`MountTable`]): which nameservice owns a path of the federated tree, what the path is
//! called there, which mount points show up in a listing, and the rules that keep a call from
//! spanning two nameservices (a rename across mount points is [`FederationError::CrossNamespaceRename`]
//! and changes nothing, as HDFS's router refuses it).
//!
//! The router and the clients that resolve the table themselves (as HDFS's ViewFS) both call
//! [`MountTable::resolve`], so the two never disagree on where a path lives.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::block_token::DEFAULT_POOL;
use crate::namespace::NsPath;

/// Longest nameservice name, in bytes.
pub const MAX_NAMESERVICE_BYTES: usize = 32;

/// Most entries a mount table holds: every call resolves a path against it, and every router
/// and client keeps it whole. HDFS deployments with federation count mount points in the
/// hundreds to low thousands.
pub const MAX_MOUNTS: usize = 10_000;

/// Largest encoded table, in bytes (bounded by the paths' and names' size bounds): every edit
/// rewrites the whole record and every `GetMountTable` reply carries it, which must stay well
/// inside a gRPC message (4 MiB by default).
pub const MAX_TABLE_BYTES: usize = 1 << 20;

/// A nameservice's name (`ns1`, `logs-2`): 1 to 32 bytes of lowercase ASCII letters, digits
/// and `-`, beginning with a letter. It names the nameservice in configurations, in the mount
/// table and in a blockserver's pool directory, so it must be safe as a file name and stable.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NameserviceId(String);

impl NameserviceId {
    /// Parses a name under the rules above.
    pub fn parse(s: &str) -> Result<Self, FederationError> {
        let bad = |why: &str| FederationError::BadNameservice {
            name: s.chars().take(64).collect(),
            reason: why.to_owned(),
        };
        if s.is_empty() || s.len() > MAX_NAMESERVICE_BYTES {
            return Err(bad("must be 1 to 32 bytes"));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(bad("must begin with a lowercase letter"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("only lowercase letters, digits and `-`"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number block access tokens name this nameservice's pool by (`Claims::pool`):
    /// FNV-1a of the name, never [`DEFAULT_POOL`] (the unnamed nameservice's). Stable across
    /// versions and machines: it is signed into tokens every member mints. A blockserver
    /// refuses a configuration where two names share a number.
    pub fn pool(&self) -> u64 {
        let hash = self.0.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        if hash == DEFAULT_POOL { 1 } else { hash }
    }
}

/// The pool number of a nameservice, or of the unnamed one.
pub fn pool_of(nameservice: Option<&NameserviceId>) -> u64 {
    nameservice.map_or(DEFAULT_POOL, NameserviceId::pool)
}

impl fmt::Display for NameserviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for NameserviceId {
    type Err = FederationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for NameserviceId {
    type Error = FederationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<NameserviceId> for String {
    fn from(id: NameserviceId) -> String {
        id.0
    }
}

/// Why a federation name, mount or call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    #[error("nameservice name {name:?}: {reason}")]
    BadNameservice { name: String, reason: String },
    /// A rename whose source and destination belong to different nameservices (or different
    /// mount points of one: the router cannot tell that the subtrees are one), refused before
    /// anything is asked of either nameservice.
    #[error("rename from {src} to {dst} crosses mount points")]
    CrossNamespaceRename { src: NsPath, dst: NsPath },
    /// No mount point covers the path and the table has no default nameservice.
    #[error("{0} is under no mount point")]
    NotMounted(NsPath),
    /// A mount point itself cannot be renamed or deleted through the tree: it is the table's
    /// (`metactl mount remove`).
    #[error("{0} is a mount point")]
    MountPoint(NsPath),
    #[error("{0} is already a mount point")]
    AlreadyMounted(NsPath),
    #[error("the mount table holds at most {MAX_MOUNTS} entries and {MAX_TABLE_BYTES} bytes")]
    TooManyMounts,
    /// `/` is the default nameservice's, set as such, never a mount point.
    #[error("`/` cannot be a mount point; set a default nameservice instead")]
    RootMount,
}

/// Where a mount point leads: a nameservice and a directory in its namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub nameservice: NameserviceId,
    pub path: NsPath,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.nameservice, self.path)
    }
}

/// An upper bound of one entry's encoded size.
fn entry_bound(at: &NsPath, to: &Destination) -> usize {
    at.size_bound()
        .saturating_add(to.path.size_bound())
        .saturating_add(to.nameservice.0.len() + 5)
}

/// A path of the federated tree, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub nameservice: NameserviceId,
    /// The path in that nameservice's namespace.
    pub path: NsPath,
    /// The mount point it was resolved through (`None`: the default nameservice).
    pub mount: Option<NsPath>,
}

/// The mount table: mount points (paths of the federated tree) to destinations, and the
/// nameservice that owns every path under no mount point, if any.
///
/// A path belongs to its longest mount point: with `/user -> ns1:/user` and
/// `/user/logs -> ns2:/`, `/user/logs/a` is `ns2:/a` and `/user/b` is `ns1:/user/b`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountTable {
    mounts: BTreeMap<NsPath, Destination>,
    default: Option<NameserviceId>,
}

impl MountTable {
    /// A table whose unmounted paths belong to `default` (or to nobody).
    pub fn new(default: Option<NameserviceId>) -> Self {
        Self {
            mounts: BTreeMap::new(),
            default,
        }
    }

    pub fn default_nameservice(&self) -> Option<&NameserviceId> {
        self.default.as_ref()
    }

    pub fn set_default(&mut self, default: Option<NameserviceId>) {
        self.default = default;
    }

    /// Every mount point and its destination, in path order.
    pub fn entries(&self) -> impl Iterator<Item = (&NsPath, &Destination)> {
        self.mounts.iter()
    }

    pub fn len(&self) -> usize {
        self.mounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    /// Every nameservice the table names.
    pub fn nameservices(&self) -> Vec<NameserviceId> {
        let mut all: Vec<NameserviceId> = self
            .mounts
            .values()
            .map(|d| d.nameservice.clone())
            .chain(self.default.clone())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Adds mount point `at`. A mount point may sit below another (it takes that part of the
    /// tree over), never at `/`, and never twice.
    pub fn add(&mut self, at: NsPath, to: Destination) -> Result<(), FederationError> {
        if at.is_root() {
            return Err(FederationError::RootMount);
        }
        if self.mounts.contains_key(&at) {
            return Err(FederationError::AlreadyMounted(at));
        }
        let grown = self.size_bound().saturating_add(entry_bound(&at, &to));
        if self.mounts.len() >= MAX_MOUNTS || grown > MAX_TABLE_BYTES {
            return Err(FederationError::TooManyMounts);
        }
        self.mounts.insert(at, to);
        Ok(())
    }

    /// An upper bound of the table's encoded size, in bytes.
    pub fn size_bound(&self) -> usize {
        self.mounts.iter().map(|(at, to)| entry_bound(at, to)).fold(
            self.default.as_ref().map_or(1, |n| n.0.len() + 6),
            usize::saturating_add,
        )
    }

    /// Removes mount point `at`; its destination if it was one. The data stays in its
    /// nameservice.
    pub fn remove(&mut self, at: &NsPath) -> Option<Destination> {
        self.mounts.remove(at)
    }

    /// The mount point `path` belongs to: the longest one that is `path` or above it.
    fn mount_of(&self, path: &NsPath) -> Option<(&NsPath, &Destination)> {
        let mut at = Some(path.clone());
        while let Some(p) = at {
            if let Some((k, v)) = self.mounts.get_key_value(&p) {
                return Some((k, v));
            }
            at = p.parent();
        }
        None
    }

    /// Which nameservice owns `path`, and the path there.
    pub fn resolve(&self, path: &NsPath) -> Result<Resolved, FederationError> {
        match self.mount_of(path) {
            Some((mount, dest)) => {
                let below = &path.components()[mount.components().len()..];
                let path = below
                    .iter()
                    .fold(dest.path.clone(), |p, c| p.child(c.as_str()));
                Ok(Resolved {
                    nameservice: dest.nameservice.clone(),
                    path,
                    mount: Some(mount.clone()),
                })
            }
            None => match &self.default {
                Some(ns) => Ok(Resolved {
                    nameservice: ns.clone(),
                    path: path.clone(),
                    mount: None,
                }),
                None => Err(FederationError::NotMounted(path.clone())),
            },
        }
    }

    /// Whether `path` is a mount point.
    pub fn is_mount_point(&self, path: &NsPath) -> bool {
        self.mounts.contains_key(path)
    }

    /// Whether some mount point lies strictly below `path` (a delete or rename of `path`
    /// would take it, and the other nameservice's subtree, along).
    pub fn has_mount_below(&self, path: &NsPath) -> bool {
        self.mounts
            .range(path.clone()..)
            .take_while(|(k, _)| k.is_strictly_under(path) || *k == path)
            .any(|(k, _)| k.is_strictly_under(path))
    }

    /// The names of the mount points directly below directory `path` (or of the directories
    /// that lead to deeper ones), which a listing of `path` shows besides what the owning
    /// nameservice holds there, as HDFS's router does.
    pub fn children_at(&self, path: &NsPath) -> Vec<String> {
        let depth = path.components().len();
        let mut names: Vec<String> = self
            .mounts
            .range(path.clone()..)
            .take_while(|(k, _)| k.is_strictly_under(path) || *k == path)
            .filter(|(k, _)| k.is_strictly_under(path))
            .map(|(k, _)| k.components()[depth].clone())
            .collect();
        names.dedup();
        names
    }

    /// Resolves both ends of a rename: the same nameservice through the same mount point,
    /// or the rename is refused. Neither end may be a mount point or hold one below it.
    pub fn resolve_rename(
        &self,
        src: &NsPath,
        dst: &NsPath,
    ) -> Result<(Resolved, Resolved), FederationError> {
        for p in [src, dst] {
            if self.is_mount_point(p) {
                return Err(FederationError::MountPoint(p.clone()));
            }
        }
        if self.has_mount_below(src) {
            return Err(FederationError::MountPoint(src.clone()));
        }
        let (from, to) = (self.resolve(src)?, self.resolve(dst)?);
        if from.nameservice != to.nameservice || from.mount != to.mount {
            return Err(FederationError::CrossNamespaceRename {
                src: src.clone(),
                dst: dst.clone(),
            });
        }
        Ok((from, to))
    }

    /// Resolves the target of a delete: a mount point, or a directory holding one, is
    /// refused (removing the mount is the table's business).
    pub fn resolve_delete(&self, path: &NsPath) -> Result<Resolved, FederationError> {
        if path.is_root() || self.is_mount_point(path) || self.has_mount_below(path) {
            return Err(FederationError::MountPoint(path.clone()));
        }
        self.resolve(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NsPath {
        NsPath::parse(s).expect("path")
    }

    fn ns(s: &str) -> NameserviceId {
        NameserviceId::parse(s).expect("name")
    }

    fn to(n: &str, path: &str) -> Destination {
        Destination {
            nameservice: ns(n),
            path: p(path),
        }
    }

    fn table() -> MountTable {
        let mut t = MountTable::new(None);
        t.add(p("/user"), to("ns1", "/user")).expect("add");
        t.add(p("/logs"), to("ns2", "/")).expect("add");
        t.add(p("/user/logs"), to("ns2", "/user-logs"))
            .expect("add");
        t
    }

    #[test]
    fn nameservice_names_are_safe_file_names() {
        for good in ["ns1", "a", "logs-2", "abcdefghijklmnopqrstuvwxyz012345"] {
            assert_eq!(ns(good).as_str(), good);
        }
        for bad in [
            "",
            "1ns",
            "-ns",
            "Ns1",
            "ns_1",
            "ns/1",
            "..",
            "ns 1",
            "abcdefghijklmnopqrstuvwxyz0123456",
            "né",
        ] {
            assert!(
                matches!(
                    NameserviceId::parse(bad),
                    Err(FederationError::BadNameservice { .. })
                ),
                "{bad:?} accepted"
            );
        }
        // Serde checks the same rules: a stored or sent name cannot bypass them.
        let bytes = postcard::to_allocvec(&"NS".to_owned()).expect("encode");
        assert!(postcard::from_bytes::<NameserviceId>(&bytes).is_err());
        let bytes = postcard::to_allocvec(&ns("ns2")).expect("encode");
        assert_eq!(postcard::from_bytes::<NameserviceId>(&bytes), Ok(ns("ns2")));
    }

    #[test]
    fn pools_are_stable_and_never_the_unnamed_one() {
        // Signed into tokens: a change here would refuse every token in flight.
        assert_eq!(ns("ns1").pool(), 0x20fc_0b19_253e_64d5);
        assert_ne!(ns("ns1").pool(), ns("ns2").pool());
        assert_eq!(pool_of(None), DEFAULT_POOL);
        assert_eq!(pool_of(Some(&ns("ns2"))), ns("ns2").pool());
    }

    #[test]
    fn a_path_belongs_to_its_longest_mount_point() {
        let t = table();
        let r = t.resolve(&p("/user/alice/f")).expect("resolve");
        assert_eq!((r.nameservice, r.path), (ns("ns1"), p("/user/alice/f")));
        let r = t.resolve(&p("/user/logs/a")).expect("resolve");
        assert_eq!((r.nameservice, r.path), (ns("ns2"), p("/user-logs/a")));
        assert_eq!(r.mount, Some(p("/user/logs")));
        let r = t.resolve(&p("/logs")).expect("resolve");
        assert_eq!((r.nameservice, r.path), (ns("ns2"), p("/")));
        // A sibling whose name merely starts like a mount point is not under it.
        assert_eq!(
            t.resolve(&p("/users")),
            Err(FederationError::NotMounted(p("/users")))
        );
        let mut d = t.clone();
        d.set_default(Some(ns("ns0")));
        let r = d.resolve(&p("/users")).expect("default");
        assert_eq!(
            (r.nameservice, r.path, r.mount),
            (ns("ns0"), p("/users"), None)
        );
    }

    #[test]
    fn mounts_are_added_once_and_never_at_the_root() {
        let mut t = table();
        assert_eq!(
            t.add(p("/user"), to("ns3", "/")),
            Err(FederationError::AlreadyMounted(p("/user")))
        );
        assert_eq!(
            t.add(p("/"), to("ns3", "/")),
            Err(FederationError::RootMount)
        );
        // The whole table stays far inside a reply: long mount points run out of room
        // before the entry count does.
        let long = format!("/{}", vec!["d".repeat(250); 200].join("/"));
        let mut big = MountTable::new(None);
        let mut added = 0usize;
        let refused = loop {
            match big.add(p(&format!("{long}/{added}")), to("ns1", "/")) {
                Ok(()) => added += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(refused, FederationError::TooManyMounts);
        assert!(added < MAX_MOUNTS && big.size_bound() <= MAX_TABLE_BYTES);
        let bytes = postcard::to_allocvec(&big).expect("encode");
        assert!(bytes.len() <= big.size_bound(), "{} > bound", bytes.len());
        assert_eq!(t.remove(&p("/logs")), Some(to("ns2", "/")));
        assert_eq!(t.remove(&p("/logs")), None);
        assert_eq!(t.nameservices(), vec![ns("ns1"), ns("ns2")]);
    }

    #[test]
    fn renames_across_mount_points_are_refused() {
        let t = table();
        let (a, b) = t
            .resolve_rename(&p("/user/a"), &p("/user/b/c"))
            .expect("same mount");
        assert_eq!((a.path, b.path), (p("/user/a"), p("/user/b/c")));
        for (src, dst) in [
            ("/user/a", "/logs/a"),
            // Same nameservice, different mount points: still refused (the router cannot
            // know the two subtrees are one).
            ("/logs/a", "/user/logs/a"),
        ] {
            assert_eq!(
                t.resolve_rename(&p(src), &p(dst)),
                Err(FederationError::CrossNamespaceRename {
                    src: p(src),
                    dst: p(dst)
                })
            );
        }
        assert_eq!(
            t.resolve_rename(&p("/logs"), &p("/user/x")),
            Err(FederationError::MountPoint(p("/logs")))
        );
        // Renaming a directory that holds a mount point would carry the mount along.
        assert_eq!(
            t.resolve_rename(&p("/user"), &p("/user2")),
            Err(FederationError::MountPoint(p("/user")))
        );
    }

    #[test]
    fn deletes_never_take_a_mount_point_along() {
        let t = table();
        assert!(t.resolve_delete(&p("/user/alice")).is_ok());
        for path in ["/user/logs", "/user", "/"] {
            assert_eq!(
                t.resolve_delete(&p(path)),
                Err(FederationError::MountPoint(p(path)))
            );
        }
    }

    #[test]
    fn listings_show_the_mount_points_below() {
        let mut t = table();
        t.add(p("/a/b/c"), to("ns1", "/c")).expect("add");
        assert_eq!(t.children_at(&p("/")), vec!["a", "logs", "user"]);
        assert_eq!(t.children_at(&p("/user")), vec!["logs"]);
        assert_eq!(t.children_at(&p("/a")), vec!["b"]);
        assert!(t.children_at(&p("/logs")).is_empty());
        assert!(t.has_mount_below(&p("/a")));
        assert!(!t.has_mount_below(&p("/a/b/c")));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Paths over a tiny alphabet, so that mount points and paths often share prefixes.
        fn path() -> impl Strategy<Value = NsPath> {
            proptest::collection::vec(prop_oneof!["a", "b", "ab"], 0..4)
                .prop_map(|c| NsPath::parse(&format!("/{}", c.join("/"))).expect("path"))
        }

        proptest! {
            /// `resolve` against a brute force: the owner is the longest mount point that is
            /// the path or one of its ancestors, and the rest of the path follows the
            /// destination.
            #[test]
            fn resolve_is_the_longest_prefix(
                mounts in proptest::collection::vec((path(), 0u8..3), 0..8),
                probe in path(),
            ) {
                let mut t = MountTable::new(None);
                for (i, (at, n)) in mounts.iter().enumerate() {
                    let _ = t.add(at.clone(), Destination {
                        nameservice: ns(&format!("ns{n}")),
                        path: p(&format!("/d{i}")),
                    });
                }
                let best = t
                    .entries()
                    .filter(|(m, _)| *m == &probe || probe.is_strictly_under(m))
                    .max_by_key(|(m, _)| m.components().len());
                match (t.resolve(&probe), best) {
                    (Ok(r), Some((m, d))) => {
                        prop_assert_eq!(&r.nameservice, &d.nameservice);
                        prop_assert_eq!(r.mount.as_ref(), Some(m));
                        let rest = &probe.components()[m.components().len()..];
                        prop_assert_eq!(&r.path.components()[..d.path.components().len()],
                            d.path.components());
                        prop_assert_eq!(&r.path.components()[d.path.components().len()..], rest);
                    }
                    (Err(FederationError::NotMounted(q)), None) => prop_assert_eq!(q, probe),
                    (r, b) => prop_assert!(false, "resolve {:?}, brute force {:?}", r, b),
                }
            }
        }
    }
}
