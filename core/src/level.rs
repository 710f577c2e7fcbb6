//! Format levels (DESIGN §11, rolling upgrade): which version of each record family a cluster
//! writes. Every binary reads every version it knows ([`crate::format`]); what it *writes*
//! follows the cluster's level, a number journaled in the replicated state and raised only by
//! `metactl upgrade finalize`, once every member runs a binary that reads it. Until then a
//! newer binary writes what the older ones read, so that any member can still go back to the
//! older binary (HDFS's rolling upgrade keeps its old layout until finalize the same way).
//!
//! A level names one version of each family whose newest version needs it; a family absent
//! from the mapping is written at its current version on every level (its versions were all
//! readable by every binary that can join the cluster).
//!
//! Level 1 is every format of the first binary with levels. The `next-format` feature builds
//! the "new version" the upgrade tests roll onto: a binary whose newest level is 2, with
//! newer versions of the inode record and of the journal's batch.

use serde::{Deserialize, Serialize};

/// A cluster format level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Level(pub u16);

impl Level {
    /// The level of a cluster that never finalized an upgrade.
    pub const FIRST: Level = Level(1);

    /// The newest level this binary writes (and reads: a cluster above it is refused).
    pub const NEWEST: Level = if cfg!(feature = "next-format") {
        Level(2)
    } else {
        Level(1)
    };

    /// Whether this binary can write (and so apply entries) at this level.
    pub fn supported(self) -> bool {
        self >= Self::FIRST && self <= Self::NEWEST
    }

    /// The inode record version written at this level.
    pub fn inode_version(self) -> u16 {
        if self.0 >= 2 && cfg!(feature = "next-format") {
            2
        } else {
            1
        }
    }

    /// The journal's batch version written at this level.
    pub fn batch_version(self) -> u16 {
        if self.0 >= 2 && cfg!(feature = "next-format") {
            3
        } else {
            2
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// This binary's version and the format levels it reads and writes, as members report it.
pub fn binary_version() -> String {
    let next = if cfg!(feature = "next-format") {
        "+next-format"
    } else {
        ""
    };
    format!("{}{next}", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_1_writes_the_first_formats() {
        assert!(Level::FIRST.supported());
        assert!(!Level(0).supported());
        assert_eq!(Level::FIRST.inode_version(), 1);
        assert_eq!(Level::FIRST.batch_version(), 2);
        assert_eq!(Level(2).supported(), cfg!(feature = "next-format"));
    }
}
