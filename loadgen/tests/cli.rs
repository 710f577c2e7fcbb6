//! `loadgen`'s command line: settings that cannot be run are refused before any load
//! starts (and the binary is built for the tests of other crates that drive it beside a
//! cluster: `metactl/tests/federation.rs`'s balance under load).

use std::process::Command;

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("run loadgen")
}

#[test]
fn a_rate_that_cannot_be_kept_is_refused_before_anything_runs() {
    for rate in [
        "--rate=0",
        "--rate=-5",
        "--rate=NaN",
        "--rate=inf",
        "--rate=1e-30",
    ] {
        let out = loadgen(&[rate, "meta", "--op", "stat", "--meta", "127.0.0.1:1"]);
        assert!(!out.status.success(), "{rate} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--rate must be"), "{rate}: {err}");
    }
}
