#!/usr/bin/env bash
# Builds and runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer), one after another, and
# prints executions, executions per second and crashes per target.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET | --runs N] [TARGET...]
#
# Default: 60 seconds per target. `--runs N` runs each target for N executions instead
# (the README's figures: `scripts/fuzz.sh --runs 10000000`). Naming targets runs only those.
# Each target grows its corpus in fuzz/corpus/TARGET (not committed), starting from the seeds
# in fuzz/seeds/TARGET (committed); libFuzzer's output goes to fuzz/logs/TARGET.log (not
# committed); a crash leaves its input in fuzz/artifacts/TARGET/ and
# makes the script exit non-zero once every target has run. Reproduce one with
#   "$CARGO_TARGET_DIR"/<host>/release/TARGET fuzz/artifacts/TARGET/crash-...
# FUZZ_ARGS adds libFuzzer flags to every run (e.g. FUZZ_ARGS=-max_len=65536).
# Needs cargo-fuzz (scripts/install-deps.sh installs it) and, preferably, a nightly toolchain
# (without one, stable builds the targets through RUSTC_BOOTSTRAP). Run it niced on a shared
# machine: nice -n 15 scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=time
amount=60
if [ "${1:-}" = "--runs" ]; then
  mode=runs
  amount="${2:?--runs needs a number}"
  shift 2
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  amount="$1"
  shift
fi

. scripts/env.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  # cargo-fuzz's flags without a sanitizer are stable rustc's; it only checks for nightly.
  export RUSTC_BOOTSTRAP=1
fi

all=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^raftfs-fuzz$')
targets=("$@")
[ ${#targets[@]} -gt 0 ] || read -r -d '' -a targets <<<"$all" || true

# No sanitizer: the code under test forbids `unsafe`, and ASan would halve the executions.
# Overflow checks and debug assertions stay on (cargo-fuzz's default); the targets' heap is
# capped in fuzz/src/lib.rs.
echo "== cargo fuzz build (${#targets[@]} targets)"
(cd fuzz && cargo "${toolchain[@]}" fuzz build --sanitizer none 2>&1 | tail -n 3) \
  || { echo "fuzz.sh: build failed" >&2; exit 1; }
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="$CARGO_TARGET_DIR/$host/release"

if [ "$mode" = runs ]; then
  limit=(-runs="$amount")
else
  limit=(-max_total_time="$amount")
fi

results=()
failed=0
for t in "${targets[@]}"; do
  corpus="fuzz/corpus/$t"
  seeds="fuzz/seeds/$t"
  artifacts="fuzz/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  dirs=("$corpus")
  [ -d "$seeds" ] && dirs+=("$seeds")
  log="fuzz/logs/$t.log"
  mkdir -p fuzz/logs
  before=$(find "$artifacts" -type f | wc -l)
  echo "== $t (${limit[*]})"
  start=$(date +%s)
  set +e
  # -timeout: an input that runs 10 s is a hang, reported as a crash. -rss_limit_mb: the
  # targets' own heap cap is lower; this catches the rest.
  "$bin_dir/$t" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "${dirs[@]}" >"$log" 2>&1
  rc=$?
  set -e
  secs=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  after=$(find "$artifacts" -type f | wc -l)
  crashes=$((after - before))
  # 72: libFuzzer interrupted (^C), its figures so far are printed; anything else is a crash.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 72 ] && [ "$crashes" -eq 0 ]; then
    crashes=1
  fi
  if [ "$crashes" -gt 0 ]; then
    failed=1
    echo "   crashed (exit $rc): $(grep -m1 -E 'panicked|ERROR|Test unit written' "$log" || true)"
    { grep -E "Test unit written|panicked" "$log" || true; } | sed 's/^/   /' | head -n 4 || true
  fi
  results+=("$(printf '%-16s %12s %10s %8s %7s' "$t" "${execs:-?}" "${rate:-?}" "$crashes" "${secs}s")")
  echo "   ${execs:-?} executions, ${rate:-?}/s, $crashes crashes, ${secs}s"
done

echo "== fuzzing: executions per target"
printf '%-16s %12s %10s %8s %7s\n' target executions exec/s crashes time
printf '%s\n' "${results[@]}"
exit "$failed"
