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
pub mod generate;
pub mod history;
pub mod model;
pub mod run;

use std::time::{Duration, Instant};

use checker::Verdict;
use checker::linearizable::{self, Cost, Limits, Search};
use model::CasRegister;

/// The models `jepsen check` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelName {
    /// One compare-and-set register, initially 0 (or `--initial`).
    CasRegister,
    /// Independent registers, one per key (`:value [key value]`), each checked on its own.
    Kv,
    /// The `namespace` workload's tree under `/jepsen/ns` (`:value [argument answer]`),
    /// judged by raftfs's own single-node namespace semantics.
    Namespace,
}

/// Checks a history text against a model within `time_limit`; registers start at 0.
pub fn check_text(text: &str, model: ModelName, time_limit: Duration) -> anyhow::Result<Verdict> {
    Ok(check_text_from(text, model, time_limit, &edn_format::Value::Integer(0))?.verdict)
}

/// [`check_text`] with the registers (`cas-register`, `kv`) starting at `initial` (`nil`:
/// Knossos's `(cas-register)` without an argument), and what the search cost.
pub fn check_text_from(
    text: &str,
    model: ModelName,
    time_limit: Duration,
    initial: &edn_format::Value,
) -> anyhow::Result<Search> {
    let register = CasRegister {
        initial: initial.clone(),
    };
    let ops = history::operations(&history::parse(text)?)?;
    let limits = Limits {
        deadline: Some(Instant::now() + time_limit),
        ..Limits::default()
    };
    Ok(match model {
        ModelName::CasRegister => linearizable::search(&register, &ops, limits),
        ModelName::Namespace => linearizable::search(
            &model::namespace::NamespaceModel {
                base: run::workload::NAMESPACE_BASE.to_owned(),
            },
            &ops,
            limits,
        ),
        ModelName::Kv => {
            let keys = model::split_by_key(&ops).map_err(anyhow::Error::msg)?;
            let searches: Vec<Search> = keys
                .into_iter()
                .map(|(_, ops)| linearizable::search(&register, &ops, limits))
                .collect();
            Search {
                cost: searches.iter().fold(Cost::default(), |c, s| c.plus(s.cost)),
                verdict: Verdict::all(searches.into_iter().map(|s| s.verdict)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register that starts at nil (Knossos's `(cas-register)`): a first compare-and-set
    /// from nil succeeds only there, one from 0 only on a register that starts at 0.
    #[test]
    fn the_register_starts_where_it_is_told() {
        let limit = Duration::from_secs(10);
        let from_nil = "[{:process 0 :type :invoke :f :cas :value [nil 1]} {:process 0 :type :ok :f :cas :value [nil 1]} {:process 1 :type :invoke :f :read :value nil} {:process 1 :type :ok :f :read :value 1}]";
        let from_zero = from_nil.replace("nil 1]", "0 1]");
        let nil = edn_format::Value::Nil;
        let zero = edn_format::Value::Integer(0);
        let verdict = |text: &str, initial: &edn_format::Value| {
            check_text_from(text, ModelName::CasRegister, limit, initial)
                .expect("check")
                .verdict
        };
        assert_eq!(verdict(from_nil, &nil), Verdict::Valid);
        assert!(matches!(verdict(from_nil, &zero), Verdict::Invalid { .. }));
        assert_eq!(verdict(&from_zero, &zero), Verdict::Valid);
        assert!(matches!(verdict(&from_zero, &nil), Verdict::Invalid { .. }));
        assert_eq!(
            check_text(&from_zero, ModelName::CasRegister, limit).expect("check"),
            Verdict::Valid,
            "0 by default"
        );
    }

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
