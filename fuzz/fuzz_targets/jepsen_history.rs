//! The Jepsen EDN reader (`jepsen/src/history.rs`): `jepsen check` reads `history.edn` files
//! that Jepsen, Knossos or an earlier run wrote, which may be truncated, hand-edited or
//! simply not histories.
//!
//! Property: reading any text (`history::parse`) and pairing its events into operations
//! (`history::operations`) never panics, hangs or overflows the stack: a bad history is an
//! error. What is read back has only client processes (nemesis events are dropped), every
//! invocation is one operation, and an operation that never completed counts as `:info`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftfs_fuzz as _;
use raftfs_jepsen::history::{self, OpType};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(events) = history::parse(text) else {
        return;
    };
    assert!(events.iter().all(|e| e.process >= 0));
    let Ok(ops) = history::operations(&events) else {
        return;
    };
    let invocations = events.iter().filter(|e| e.kind == OpType::Invoke).count();
    assert_eq!(ops.len(), invocations);
    for op in &ops {
        if op.complete.is_none() {
            assert_eq!(op.outcome, OpType::Info);
        }
    }
});
