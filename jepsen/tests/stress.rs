//! The checker's stress set: generated cas-register histories (`jepsen generate`) with many
//! indeterminate operations, which made a plain Wing–Gong search run out of its budget. Each
//! valid one must be found valid and each corrupted one invalid, within a budget of
//! configurations (deterministic, unlike time). The seconds they took are printed; the
//! release build's figures are `bench/checker.sh`'s.

use std::process::Command;

use raftfs_jepsen::checker::Verdict;
use raftfs_jepsen::checker::linearizable::{self, Limits};
use raftfs_jepsen::generate::{self, Shape};
use raftfs_jepsen::history::{OpType, operations, parse};
use raftfs_jepsen::model::CasRegister;

/// The shape of stress history `seed` (as `bench/checker.sh` makes them): 200 to 400
/// operations, 5 to 12 processes, 10% to 15% of the writes and compare-and-sets crashed (up
/// to 48 indeterminate operations).
fn shape(seed: u64) -> Shape {
    Shape {
        ops: 200 + (seed as usize * 37) % 201,
        processes: 5 + (seed as usize * 7) % 8,
        crash_ratio: 0.10 + (seed % 3) as f64 * 0.025,
        values: 5,
    }
}

/// Most configurations a stress history may record (dominated ones included): the worst of
/// them explores 858k; a search without dominance ran out of 20 million.
const BUDGET: usize = 1_000_000;

#[test]
fn generated_histories_with_many_indeterminate_operations_are_decided() {
    let limits = Limits {
        deadline: None,
        max_cached: BUDGET,
    };
    let (mut slowest, mut most, mut infos) = (0f64, 0u64, 0usize);
    for seed in 0..100 {
        let shape = shape(seed);
        let mut events = generate::cas_register(seed, shape);
        for corrupt in [false, true] {
            if corrupt {
                generate::corrupt(&mut events, seed, shape).expect("a read");
            }
            let text = generate::to_edn(&events);
            let ops = operations(&parse(&text).expect("parses")).expect("pairs");
            assert!((200..=400).contains(&ops.len()));
            infos = infos.max(ops.iter().filter(|o| o.outcome == OpType::Info).count());
            let search = linearizable::search(&CasRegister::default(), &ops, limits);
            let expected = if corrupt { "invalid" } else { "valid" };
            match (&search.verdict, corrupt) {
                (Verdict::Valid, false) | (Verdict::Invalid { .. }, true) => {}
                (v, _) => panic!("seed {seed}: expected {expected}, got {v:?}\n{text}"),
            }
            slowest = slowest.max(search.cost.seconds);
            most = most.max(search.cost.configurations);
        }
    }
    println!(
        "200 histories, up to {infos} indeterminate operations: at most {most} configurations, \
         {slowest:.3} s"
    );
}

fn jepsen(args: &[&str], stdin_file: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jepsen"))
        .args(args)
        .arg(stdin_file)
        .output()
        .expect("run jepsen");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `jepsen check --initial`: a history recorded against a register that starts at nil (as
/// Jepsen's etcd tests record) is valid from nil and not from 0, through the binary; the cost
/// is printed, and is in the JSON.
#[test]
fn the_binary_takes_the_initial_value_and_prints_the_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("from-nil.edn");
    std::fs::write(
        &file,
        "{:process 0 :type :invoke :f :read :value nil}\n{:process 0 :type :ok :f :read :value nil}\n\
         {:process 1 :type :invoke :f :cas :value [nil 4]}\n{:process 1 :type :ok :f :cas :value [nil 4]}\n\
         {:process 0 :type :invoke :f :read :value nil}\n{:process 0 :type :ok :f :read :value 4}\n",
    )
    .expect("write");
    let check = ["check", "--model", "cas-register"];
    let (code, out, err) = jepsen(&[&check[..], &["--initial", "nil"]].concat(), &file);
    assert_eq!((code, out.trim()), (0, "valid"), "{err}");
    assert!(err.contains("configurations explored in"), "{err}");
    let (code, out, _) = jepsen(&check, &file);
    assert_eq!(code, 1, "from 0 the cas from nil cannot succeed: {out}");
    assert!(out.starts_with("invalid: process 1 cas [nil 4]"), "{out}");
    let (code, out, _) = jepsen(
        &[&check[..], &["--initial", "nil", "--json"]].concat(),
        &file,
    );
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!((code, json["verdict"].as_str()), (0, Some("valid")));
    assert!(json["cost"]["configurations"].as_u64() > Some(0), "{json}");
    let (code, _, err) = jepsen(&[&check[..], &["--initial", "[1"]].concat(), &file);
    assert_eq!(code, 2, "clap refuses a value that is not EDN: {err}");
    assert!(err.contains("not an EDN value"), "{err}");
}

/// `jepsen generate` prints the same history for the same seed, and with `--corrupt` one the
/// checker finds invalid.
#[test]
fn generate_prints_histories_the_checker_decides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_jepsen"))
            .args(args)
            .output()
            .expect("run jepsen");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let a = run(&["generate", "--seed", "3", "--ops", "250"]);
    assert_eq!(a, run(&["generate", "--seed", "3", "--ops", "250"]));
    let bad = run(&["generate", "--seed", "3", "--ops", "250", "--corrupt"]);
    for (text, code) in [(a, 0), (bad, 1)] {
        let file = dir.path().join("h.edn");
        std::fs::write(&file, text).expect("write");
        let (c, out, err) = jepsen(&["check", "--model", "cas-register"], &file);
        assert_eq!(c, code, "{out}{err}");
    }
}

/// Whether `ops` is linearizable, by trying every order: an operation may go next when no
/// `:ok` operation still to place completed before it was invoked; `:info` ones may be left
/// out; `:fail` ones never happened. Only for a handful of operations.
fn brute_force(model: &CasRegister, ops: &[raftfs_jepsen::history::Operation]) -> bool {
    use raftfs_jepsen::model::Model;
    fn go(
        model: &CasRegister,
        ops: &[&raftfs_jepsen::history::Operation],
        placed: &mut Vec<bool>,
        state: &edn_format::Value,
    ) -> bool {
        if (0..ops.len()).all(|i| placed[i] || ops[i].outcome != OpType::Ok) {
            return true;
        }
        for x in 0..ops.len() {
            let blocked = (0..ops.len()).any(|y| {
                !placed[y]
                    && y != x
                    && ops[y].outcome == OpType::Ok
                    && ops[y].complete.is_some_and(|c| c < ops[x].invoke)
            });
            if placed[x] || blocked {
                continue;
            }
            if let Some(next) = model.step(state, ops[x]) {
                placed[x] = true;
                let found = go(model, ops, placed, &next);
                placed[x] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    let ops: Vec<_> = ops.iter().filter(|o| o.outcome != OpType::Fail).collect();
    go(model, &ops, &mut vec![false; ops.len()], &model.init())
}

/// The search agrees with trying every order on small histories with many indeterminate
/// operations, where some reads were changed to another value that was (or was not) written:
/// stale reads, not only impossible ones. What the pruning (dominance, alike and covered
/// indeterminate operations, reads without an answer left out) gives up, this would find.
#[test]
fn the_search_agrees_with_every_order_on_small_histories() {
    use rand::{Rng, SeedableRng};
    let model = CasRegister::default();
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..3000u64 {
        let shape = Shape {
            ops: 5 + (seed % 3) as usize,
            processes: 3,
            crash_ratio: 0.4,
            values: 3,
        };
        let mut events = generate::cas_register(seed, shape);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for e in events
            .iter_mut()
            .filter(|e| e.kind == OpType::Ok && e.f == "read")
        {
            if rng.random_bool(0.3) {
                e.value = edn_format::Value::Integer(rng.random_range(0..3));
            }
        }
        let text = generate::to_edn(&events);
        let ops = operations(&parse(&text).expect("parses")).expect("pairs");
        let expected = brute_force(&model, &ops);
        let got = linearizable::check(&model, &ops, Limits::default());
        assert_eq!(got.is_valid(), expected, "seed {seed}: {got:?}\n{text}");
        assert!(!matches!(got, Verdict::Unknown { .. }));
        if expected { valid += 1 } else { invalid += 1 }
    }
    assert!(
        valid > 300 && invalid > 300,
        "{valid} valid, {invalid} invalid"
    );
}
