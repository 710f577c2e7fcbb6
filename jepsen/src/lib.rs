//! The raftfs Jepsen harness: histories in Jepsen's EDN format and the checkers that judge
//! them (DESIGN §5, issue "Jepsen-style harness").
//!
//! - [`history`]: reading `history.edn` (Jepsen's one map per line, or Knossos's vector) and
//!   pairing invocations with completions.
//! - [`model`]: sequential specifications (a compare-and-set register; independent keys).
//! - [`checker`]: the verdicts: linearizability by the Wing–Gong–Lowe search, and the
//!   session guarantees of observer reads.
//! - [`run`]: `jepsen run`: a real cluster, client workers, a nemesis, the recorded history.
//!
//! `jepsen check --model cas-register|kv HISTORY.edn` runs a checker on a stored history, so
//! that our verdicts can be compared with Knossos's on the same files.

pub mod checker;
pub mod history;
pub mod model;
pub mod run;

use std::time::{Duration, Instant};

use checker::Verdict;
use checker::linearizable::{self, Limits};
use model::CasRegister;

/// The models `jepsen check` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelName {
    /// One compare-and-set register, initially 0.
    CasRegister,
    /// Independent registers, one per key (`:value [key value]`), each checked on its own.
    Kv,
    /// The `namespace` workload's tree under `/jepsen/ns` (`:value [argument answer]`),
    /// judged by raftfs's own single-node namespace semantics.
    Namespace,
}

/// Checks a history text against a model within `time_limit`.
pub fn check_text(text: &str, model: ModelName, time_limit: Duration) -> anyhow::Result<Verdict> {
    let ops = history::operations(&history::parse(text)?)?;
    let limits = Limits {
        deadline: Some(Instant::now() + time_limit),
        ..Limits::default()
    };
    Ok(match model {
        ModelName::CasRegister => linearizable::check(&CasRegister, &ops, limits),
        ModelName::Namespace => linearizable::check(
            &model::namespace::NamespaceModel {
                base: run::workload::NAMESPACE_BASE.to_owned(),
            },
            &ops,
            limits,
        ),
        ModelName::Kv => {
            let keys = model::split_by_key(&ops).map_err(anyhow::Error::msg)?;
            Verdict::all(
                keys.into_iter()
                    .map(|(_, ops)| linearizable::check(&CasRegister, &ops, limits)),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_checks_each_key_on_its_own() {
        // Key 1 is fine; key 2 reads a value never written to it (it was written to key 1).
        let ok = "[{:process 0 :type :invoke :f :write :value [1 5]} {:process 0 :type :ok :f :write :value [1 5]} {:process 1 :type :invoke :f :read :value [1 nil]} {:process 1 :type :ok :f :read :value [1 5]} {:process 1 :type :invoke :f :read :value [2 nil]} {:process 1 :type :ok :f :read :value [2 0]}]";
        let bad = "[{:process 0 :type :invoke :f :write :value [1 5]} {:process 0 :type :ok :f :write :value [1 5]} {:process 1 :type :invoke :f :read :value [2 nil]} {:process 1 :type :ok :f :read :value [2 5]}]";
        let limit = Duration::from_secs(10);
        assert!(
            check_text(ok, ModelName::Kv, limit)
                .expect("checks")
                .is_valid()
        );
        assert!(
            check_text(bad, ModelName::Kv, limit)
                .expect("checks")
                .is_invalid()
        );
        // As one register, the same history is fine: the key is what makes it wrong.
        let one_register = "[{:process 0 :type :invoke :f :write :value 5} {:process 0 :type :ok :f :write :value 5} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 5}]";
        assert!(
            check_text(one_register, ModelName::CasRegister, limit)
                .expect("checks")
                .is_valid()
        );
        assert!(
            check_text(
                "[{:process 0 :type :invoke :f :write :value 5}]",
                ModelName::Kv,
                limit
            )
            .is_err()
        );
    }
}
