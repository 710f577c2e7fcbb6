//! Checkers: each reads a history and gives a [`Verdict`]. A checker that runs out of time or
//! memory says `Unknown`, never `Valid`.

pub mod linearizable;
pub mod list_append;
pub mod session;

use serde::Serialize;

/// What a checker concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Valid,
    /// An anomaly, with the operation where the search could go no further.
    Invalid {
        op: String,
    },
    /// The checker could not decide (time or memory limit).
    Unknown {
        reason: String,
    },
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }
    pub fn is_invalid(&self) -> bool {
        matches!(self, Verdict::Invalid { .. })
    }

    /// Combines the verdicts of independent parts (keys): any anomaly makes the whole
    /// invalid; otherwise any unknown part makes it unknown.
    pub fn all(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut unknown = None;
        for v in verdicts {
            match v {
                Verdict::Invalid { .. } => return v,
                Verdict::Unknown { .. } => unknown = unknown.or(Some(v)),
                Verdict::Valid => {}
            }
        }
        unknown.unwrap_or(Verdict::Valid)
    }
}
