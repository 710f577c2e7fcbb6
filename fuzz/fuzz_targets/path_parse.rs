//! Path parsing (`core/src/namespace/path.rs`), where every path a client sends enters.
//!
//! Property: `NsPath::parse` never panics on any string, and what it accepts obeys DESIGN §2
//! as the rest of the namespace assumes without checking again: every component 1..=255
//! bytes, none `.` or `..`, none holding `/` or NUL, at most 1000 deep; the path prints back
//! as the input (less one trailing `/`) and parses to itself; parent and child undo each
//! other; and `size_bound`, which the proposer adds up to keep a journal entry within its
//! bytes, is at least the path's real postcard encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftfs_core::namespace::NsPath;
use raftfs_core::namespace::path::{MAX_COMPONENT_BYTES, MAX_DEPTH};
use raftfs_fuzz as _;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(path) = NsPath::parse(&text) else {
        return;
    };
    let components = path.components();
    assert!(
        components.len() <= MAX_DEPTH,
        "{} components",
        components.len()
    );
    for c in components {
        assert!(
            !c.is_empty() && c.len() <= MAX_COMPONENT_BYTES,
            "component {c:?}"
        );
        assert!(c != "." && c != "..", "component {c:?}");
        assert!(!c.contains('/') && !c.contains('\0'), "component {c:?}");
    }
    let printed = path.to_string();
    let expected = if text.len() > 1 {
        text.strip_suffix('/').unwrap_or(&text)
    } else {
        &text
    };
    assert_eq!(printed, expected);
    assert_eq!(NsPath::parse(&printed).as_ref(), Ok(&path));
    let encoded = postcard::to_allocvec(&path).expect("a path encodes");
    assert!(
        encoded.len() <= path.size_bound(),
        "encoded {} bytes, bound {}",
        encoded.len(),
        path.size_bound()
    );
    match (path.parent(), path.name()) {
        (Some(parent), Some(name)) => {
            assert_eq!(parent.child(name), path);
            assert!(path.is_strictly_under(&parent));
            assert!(path.is_strictly_under(&NsPath::root()));
            assert!(!parent.is_strictly_under(&path));
        }
        (None, None) => assert!(path.is_root()),
        other => panic!("parent and name disagree: {other:?}"),
    }
});
