//! What a metaserver member is in its cluster (DESIGN §4, roles).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A member's role in the Raft membership. Voters elect the active and make up its quorum;
/// observers (Raft learners) receive the journal and serve reads under the state-ID rule, but
/// never vote. The wire and `cluster status --json` carry it as `"voter"` / `"observer"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Voter,
    Observer,
}

impl MemberRole {
    /// The role's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            MemberRole::Voter => "voter",
            MemberRole::Observer => "observer",
        }
    }

    /// Whether the member votes.
    pub const fn is_voter(self) -> bool {
        matches!(self, MemberRole::Voter)
    }
}

impl fmt::Display for MemberRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A role name that is neither `voter` nor `observer`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown member role {0:?} (voter or observer)")]
pub struct UnknownRole(pub String);

impl FromStr for MemberRole {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "voter" => Ok(MemberRole::Voter),
            "observer" => Ok(MemberRole::Observer),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_names_and_nothing_else() {
        for role in [MemberRole::Voter, MemberRole::Observer] {
            assert_eq!(role.as_str().parse::<MemberRole>(), Ok(role));
            assert_eq!(format!("{role:<9}|"), format!("{:<9}|", role.as_str()));
        }
        assert_eq!(
            "learner".parse::<MemberRole>(),
            Err(UnknownRole("learner".into()))
        );
        assert!("Voter".parse::<MemberRole>().is_err());
    }
}
