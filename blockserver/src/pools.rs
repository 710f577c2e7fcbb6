//! The block pools this server keeps (DESIGN §10): one per nameservice it serves. A block is
//! named by (pool, group, index) everywhere here, since group ids are handed out by each
//! nameservice on its own; a pool has its own directory in every volume, its own key ring
//! (`tokens.rs`) and fence (`heartbeat/`), and takes orders only from its nameservice.

use std::path::{Path, PathBuf};

use raftfs_core::federation::{NameserviceId, pool_of};

/// One block pool: a nameservice's, or the unnamed one of a cluster without federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// `None`: the unnamed nameservice.
    pub name: Option<NameserviceId>,
    /// The number block access tokens name the pool by.
    pub id: u64,
}

impl Pool {
    /// The unnamed nameservice's pool: its blocks stay where a server of before federation
    /// kept them (`DIR/finalized`), so nothing moves on upgrade.
    pub fn unnamed() -> Self {
        Self {
            name: None,
            id: pool_of(None),
        }
    }

    pub fn named(name: NameserviceId) -> Self {
        Self {
            id: name.pool(),
            name: Some(name),
        }
    }

    /// The pool's directory in the volume at `volume`.
    pub fn dir(&self, volume: &Path) -> PathBuf {
        match &self.name {
            None => volume.to_owned(),
            Some(name) => volume.join("pools").join(name.as_str()),
        }
    }

    /// The nameservice's name as registrations carry it ("" for the unnamed one).
    pub fn wire_name(&self) -> &str {
        self.name.as_ref().map_or("", NameserviceId::as_str)
    }
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            None => f.write_str("(unnamed)"),
            Some(name) => write!(f, "{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_pools_live_apart_and_the_unnamed_one_where_it_always_was() {
        let root = Path::new("/data1");
        assert_eq!(Pool::unnamed().dir(root), PathBuf::from("/data1"));
        let ns1 = Pool::named(NameserviceId::parse("ns1").expect("name"));
        assert_eq!(ns1.dir(root), PathBuf::from("/data1/pools/ns1"));
        assert_ne!(ns1.id, Pool::unnamed().id);
        assert_eq!((ns1.wire_name(), Pool::unnamed().wire_name()), ("ns1", ""));
    }
}
