//! The checker agrees with Knossos on Knossos's own cas-register histories (recorded from
//! MongoDB, RethinkDB and a stress test; `tests/knossos/README.md`): every `good` file is
//! linearizable, every `bad` one is not. Each runs through the `jepsen check` binary, as an
//! operator would run it.

use std::path::Path;
use std::process::Command;

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    // The package's directory as `cargo test` gives it at run time: the compile-time one may
    // be another checkout's that shared the target directory.
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = Path::new(&manifest)
        .join("tests/knossos/cas-register")
        .join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "edn"))
        .collect();
    out.sort();
    out
}

fn verdict(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jepsen"))
        .args(["check", "--model", "cas-register", "--time-limit", "60s"])
        .arg(path)
        .output()
        .expect("run jepsen");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn agrees_with_knossos_on_its_cas_register_histories() {
    let good = files("good");
    let bad = files("bad");
    assert_eq!(
        (good.len(), bad.len()),
        (113, 7),
        "the corpus is incomplete"
    );
    let mut wrong = Vec::new();
    for p in &good {
        let (code, said) = verdict(p);
        if code != 0 {
            wrong.push(format!("{}: expected valid, got {said}", p.display()));
        }
    }
    for p in &bad {
        let (code, said) = verdict(p);
        if code != 1 || !said.starts_with("invalid") {
            wrong.push(format!("{}: expected invalid, got {said}", p.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
