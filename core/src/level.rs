//! Format levels (DESIGN §11, rolling upgrade): which version of each record family a cluster
//! writes. Every binary reads every version it knows ([`crate::format`]); what it *writes*
//! follows the cluster's level, a number journaled in the replicated state and raised only by
//! `metactl upgrade finalize`, once every member runs a binary that reads it. Until then a
//! newer binary writes what the older ones read, so that any member can still go back to the
//! older binary (HDFS's rolling upgrade keeps its old layout until finalize the same way).
//!
//! The level gates what is *new*: a record family with a version only newer binaries read
//! writes each value as the oldest version that holds it (`format::Schema::version_for`),
//! and the new things that need the new version (a field) are only set once the level says
//! every member reads it. So before finalize every record is in the old versions, and after
//! it the new ones appear as the new things are used. The state machine sets each batch's
//! level from the replicated state, so every member decides the same.
//!
//! Level 1 is every format of the first binary with levels. The `next-format` feature builds
//! the "new version" the upgrade tests roll onto, whose newest level is 2: the writer's
//! machine of a file under construction (inode version 2, retry result version 3) and the
//! caller's machine of every journaled operation (batch version 3).

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
        assert_eq!(Level(2).supported(), cfg!(feature = "next-format"));
    }
}
