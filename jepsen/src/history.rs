//! Histories in Jepsen's EDN format: one map per operation with `:process`, `:type`
//! (`:invoke`, `:ok`, `:fail`, `:info`), `:f` and `:value`, as Jepsen's `history.edn` (one map
//! per line) or Knossos's test data (one vector or list of maps) stores them.
//!
//! Parsing is edn-format's; this module only turns the generic EDN values into [`Op`]s and
//! pairs each invocation with its completion.

use edn_format::{Keyword, Value};

/// An operation's event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpType {
    Invoke,
    /// Completed and took effect once, between invocation and completion.
    Ok,
    /// Completed and certainly did not take effect.
    Fail,
    /// Outcome unknown: may have taken effect at any point after the invocation, or never.
    Info,
}

impl OpType {
    /// The `:type` keyword's name.
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

/// One event of a history.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in the history (`:index` when present, else the order read).
    pub index: usize,
    pub process: i64,
    pub kind: OpType,
    /// `:f`, without the colon (`read`, `write`, `cas`, ...).
    pub f: String,
    pub value: Value,
}

/// Why a history cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("not EDN: {0}")]
    Edn(String),
    #[error("event {index}: {why}")]
    Event { index: usize, why: String },
}

fn key(name: &str) -> Value {
    Value::Keyword(Keyword::from_name(name))
}

fn get<'a>(map: &'a Value, name: &str) -> Option<&'a Value> {
    match map {
        Value::Map(m) => m.get(&key(name)),
        _ => None,
    }
}

fn event(index: usize, v: &Value) -> Result<Event, HistoryError> {
    let bad = |why: &str| HistoryError::Event {
        index,
        why: why.to_owned(),
    };
    if !matches!(v, Value::Map(_)) {
        return Err(bad("not a map"));
    }
    let process = match get(v, "process") {
        Some(Value::Integer(p)) => *p,
        // Jepsen's nemesis events carry `:process :nemesis`; they are not client operations.
        Some(Value::Keyword(k)) if k.name() == "nemesis" => -1,
        _ => return Err(bad("no integer :process")),
    };
    let kind = match get(v, "type") {
        Some(Value::Keyword(k)) => match k.name() {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            other => return Err(bad(&format!("unknown :type :{other}"))),
        },
        _ => return Err(bad("no :type")),
    };
    let f = match get(v, "f") {
        Some(Value::Keyword(k)) => k.name().to_owned(),
        Some(Value::Symbol(s)) => s.name().to_owned(),
        _ => return Err(bad("no :f")),
    };
    let index = match get(v, "index") {
        Some(Value::Integer(i)) => usize::try_from(*i).unwrap_or(index),
        _ => index,
    };
    Ok(Event {
        index,
        process,
        kind,
        f,
        value: get(v, "value").cloned().unwrap_or(Value::Nil),
    })
}

/// Deepest nesting of collections a history may have (a history nests a few levels).
pub const MAX_NESTING: usize = 64;
/// Most digits of a number's exponent (`1E9999`).
pub const MAX_EXPONENT_DIGITS: usize = 4;

/// Refuses, before edn-format sees it, what makes edn-format crash instead of failing (both
/// found by fuzz/jepsen_history):
/// - collections nested deeper than [`MAX_NESTING`]: its parser, and the drop of what it
///   builds, recurse once per level, and some ten thousand `[` overflowed the stack and
///   killed `jepsen check` (a debug build overflows a test thread's 2 MiB at 256);
/// - a character literal `\u` with a non-ASCII character among the next four: it slices its
///   lookahead at byte 5, inside that character, and panics;
/// - a number with an exponent of more than [`MAX_EXPONENT_DIGITS`] digits: a big decimal
///   like `5E8888888888888888888M` or `5.e148888M` in a set took longer than 10 s to read.
///
/// Strings and comments are skipped; anything else is counted, so this refuses no more than
/// those inputs and a few other malformed ones.
fn check_edn(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut chars = text.chars();
    let mut after_digit = false;
    while let Some(c) = chars.next() {
        // In a number (`5`, `5.`): an `e` there starts its exponent.
        let digit = after_digit;
        after_digit = c.is_ascii_digit() || (c == '.' && digit);
        match c {
            'e' | 'E' if digit => {
                let mut ahead = chars.clone().peekable();
                // edn-format takes any run of signs (`e+-0026...`), not one.
                while ahead.next_if(|c| *c == '+' || *c == '-').is_some() {}
                if ahead.take_while(char::is_ascii_digit).count() > MAX_EXPONENT_DIGITS {
                    return Err(format!(
                        "a number with an exponent of more than {MAX_EXPONENT_DIGITS} digits"
                    ));
                }
            }
            '[' | '(' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!("collections nested deeper than {MAX_NESTING}"));
                }
            }
            ']' | ')' | '}' => depth = depth.saturating_sub(1),
            // A character literal: `\[` is the character, not a vector.
            '\\' => {
                // edn-format reads the literal after any whitespace or comment that follows.
                let mut ahead = chars.clone();
                let mut next = ahead.next();
                while let Some(c) = next
                    && (c.is_whitespace() || c == ',' || c == ';')
                {
                    if c == ';' {
                        ahead.by_ref().take_while(|c| *c != '\n').for_each(drop);
                    }
                    next = ahead.next();
                }
                if next == Some('u') && ahead.take(4).any(|c| !c.is_ascii()) {
                    return Err("a character literal \\u not followed by four hex digits".into());
                }
                chars.next();
            }
            ';' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads a history: one EDN collection of maps, or a sequence of top-level maps.
pub fn parse(text: &str) -> Result<Vec<Event>, HistoryError> {
    check_edn(text).map_err(HistoryError::Edn)?;
    let mut forms = Vec::new();
    let mut parser =
        edn_format::Parser::from_iter(text.chars(), edn_format::ParserOptions::default());
    for form in parser.by_ref() {
        forms.push(form.map_err(|e| HistoryError::Edn(e.to_string()))?);
    }
    let maps: Vec<Value> = match forms.as_slice() {
        [Value::Vector(v)] | [Value::List(v)] => v.clone(),
        _ => forms,
    };
    maps.iter()
        .enumerate()
        .map(|(i, v)| event(i, v))
        .filter(|e| !matches!(e, Ok(e) if e.process < 0))
        .collect()
}

/// A client operation: an invocation and its completion (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub process: i64,
    pub f: String,
    /// The invocation's value (what was asked).
    pub invoke_value: Value,
    /// The completion's value (what was seen), for `:ok`; else the invocation's.
    pub value: Value,
    /// `Ok`, `Fail` or `Info` (an invocation never completed counts as `Info`).
    pub outcome: OpType,
    /// Index of the invocation and of the completion (`None`: never completed).
    pub invoke: usize,
    pub complete: Option<usize>,
}

/// Pairs every invocation with the next completion of the same process.
pub fn operations(events: &[Event]) -> Result<Vec<Operation>, HistoryError> {
    let mut open: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut ops: Vec<Operation> = Vec::new();
    for e in events {
        match e.kind {
            OpType::Invoke => {
                if open.contains_key(&e.process) {
                    return Err(HistoryError::Event {
                        index: e.index,
                        why: format!("process {} invoked twice without completing", e.process),
                    });
                }
                open.insert(e.process, ops.len());
                ops.push(Operation {
                    process: e.process,
                    f: e.f.clone(),
                    invoke_value: e.value.clone(),
                    value: e.value.clone(),
                    outcome: OpType::Info,
                    invoke: e.index,
                    complete: None,
                });
            }
            done => {
                let Some(i) = open.remove(&e.process) else {
                    return Err(HistoryError::Event {
                        index: e.index,
                        why: format!(
                            "process {} completed an operation it never invoked",
                            e.process
                        ),
                    });
                };
                let op = &mut ops[i];
                op.outcome = done;
                op.complete = Some(e.index);
                if done == OpType::Ok {
                    op.value = e.value.clone();
                }
            }
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms_and_skips_comments_and_nemesis() {
        let vector = "; a comment\n[{:process 0, :type :invoke, :f :write, :value 1}\n ; inside\n {:process 0, :type :ok, :f :write, :value 1}]";
        let lines = "{:process 0, :type :invoke, :f :write, :value 1}\n{:process :nemesis, :type :info, :f :start, :value nil}\n{:process 0, :type :ok, :f :write, :value 1}\n";
        for text in [vector, lines] {
            let events = parse(text).expect("parses");
            assert_eq!(events.len(), 2, "{text}");
            let ops = operations(&events).expect("pairs");
            assert_eq!(ops.len(), 1);
            assert_eq!(ops[0].outcome, OpType::Ok);
            assert_eq!(ops[0].value, Value::Integer(1));
        }
    }

    /// Found by fuzz/jepsen_history: deep nesting overflowed the stack in edn-format's
    /// recursive parser, and `\u` before a multi-byte character panicked in it; both are
    /// errors now. Nesting inside strings and comments does not count, nor a character
    /// literal's bracket.
    #[test]
    fn inputs_that_crashed_edn_format_are_errors() {
        let refused = |text: &str, why: &str| {
            assert!(
                matches!(parse(text), Err(HistoryError::Edn(e)) if e.contains(why)),
                "{}",
                text.chars().take(12).collect::<String>()
            );
        };
        refused(&"[".repeat(100_000), "nested");
        refused(&"{:a ".repeat(50_000), "nested");
        refused(&"(".repeat(MAX_NESTING + 1), "nested");
        refused("\\uabc\u{273}", "character literal");
        refused("[{:process 0, :value \\u\u{e9}}]", "character literal");
        refused("{\\;`\nu38}\u{35c}", "character literal");
        refused("[\\ , u\u{e9}]", "character literal");
        refused("#{5888888E8888888888888888888M 2M}", "exponent");
        refused("[1e+123456]", "exponent");
        refused("#{58888888888.e148888M 2M}", "exponent");
        // Found by fuzz/jepsen_history: signs then leading zeros, ten seconds in a set.
        refused("#{0e+-002688888888M -44M}", "exponent");
        refused(
            include_str!("../../fuzz/seeds/jepsen_history/bigdecimal-set-signs-timeout.edn"),
            "exponent",
        );
        assert!(
            parse("[{:process 0, :type :ok, :f :read, :value [1E300 2.5e-12 :e12345]}]").is_ok()
        );
        let fine = "[".repeat(MAX_NESTING) + &"]".repeat(MAX_NESTING);
        assert_eq!(check_edn(&fine), Ok(()));
        assert!(!matches!(parse(&fine), Err(HistoryError::Edn(_))));
        let quoted = format!(
            "[{{:process 0, :type :invoke, :f :write, :value \"{}\\\"\"}} ; {}\n {{:process 0, :type :ok, :f :write, :value \\[}}]",
            "[".repeat(1000),
            "(".repeat(1000)
        );
        assert_eq!(check_edn(&quoted), Ok(()));
        assert_eq!(parse(&quoted).expect("parses").len(), 2);
        // In a string, `\u` is edn-format's escape, which fails without panicking.
        let escaped = "[\"\\u\u{e9}\"]";
        assert_eq!(check_edn(escaped), Ok(()));
        assert!(parse(escaped).is_err());
    }

    #[test]
    fn an_unclosed_invocation_is_info_and_bad_histories_are_refused() {
        let ops = operations(
            &parse("[{:process 3, :type :invoke, :f :read, :value nil}]").expect("parses"),
        )
        .expect("pairs");
        assert_eq!(ops[0].outcome, OpType::Info);
        assert!(parse("[{:process 3, :type :done, :f :read}]").is_err());
        assert!(parse("[{:type :ok, :f :read}]").is_err());
        assert!(parse("[1 2").is_err());
        let twice =
            parse("[{:process 1, :type :invoke, :f :read} {:process 1, :type :invoke, :f :read}]")
                .expect("parses");
        assert!(operations(&twice).is_err());
        let orphan = parse("[{:process 1, :type :ok, :f :read}]").expect("parses");
        assert!(operations(&orphan).is_err());
    }
}
