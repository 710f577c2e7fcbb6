#!/usr/bin/env bash
# The linearizability checker's stress set (issue 21): N generated cas-register histories
# (`jepsen generate`, 200-400 operations, 5-12 processes, 10-15% of the writes and
# compare-and-sets crashed, i.e. :info), each checked as generated (valid by construction)
# and corrupted (one read sees a value never written: invalid), through the release binary.
# Prints the slowest histories and the totals; then the Knossos corpus, timed the same way.
#
#   bench/checker.sh [N]        (default 100)
#   RAFTFS_BIN=DIR bench/checker.sh   use DIR/jepsen instead of building
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
if [[ -z "${RAFTFS_BIN:-}" ]]; then
    . scripts/env.sh
    cargo build --release -q -p raftfs-jepsen
    RAFTFS_BIN=${CARGO_TARGET_DIR:-target}/release
fi
J=$RAFTFS_BIN/jepsen
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results=$work/results
for ((seed = 0; seed < N; seed++)); do
    ops=$((200 + (seed * 37) % 201))
    processes=$((5 + (seed * 7) % 8))
    crash=$(awk -v s="$seed" 'BEGIN { printf "%.3f", 0.10 + (s % 3) * 0.025 }')
    for corrupt in "" --corrupt; do
        file=$work/h.edn
        "$J" generate --seed "$seed" --ops "$ops" --processes "$processes" \
            --crash-ratio "$crash" $corrupt > "$file"
        infos=$(grep -c ':type :info' "$file" || true)
        # Exit status 1 is the verdict invalid: expected for the corrupted ones.
        out=$("$J" check --model cas-register --time-limit 60s --json "$file" || true)
        echo "$seed ${corrupt:-as-generated} $ops $infos $out" >> "$results"
    done
done
python3 - "$results" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    seed, kind, ops, infos, js = line.split(" ", 4)
    d = json.loads(js)
    rows.append((d["cost"]["seconds"], d["cost"]["configurations"], d["verdict"], int(seed), kind, int(ops), int(infos)))
wrong = [r for r in rows if r[2] != ("valid" if r[4] == "as-generated" else "invalid")]
rows.sort(reverse=True)
print(f"{len(rows)} histories; {len(wrong)} wrong or undecided verdicts")
for kind in ("as-generated", "--corrupt"):
    sel = [r for r in rows if r[4] == kind]
    secs = sorted(r[0] for r in sel)
    print(f"  {kind:13} max {secs[-1]:.3f} s, median {secs[len(secs)//2]:.4f} s, "
          f"max {max(r[1] for r in sel)} configurations, up to {max(r[6] for r in sel)} :info")
print("slowest:")
for r in rows[:5]:
    print(f"  seed {r[3]} {r[4]}: {r[5]} ops, {r[6]} :info, {r[2]}, {r[1]} configurations, {r[0]:.3f} s")
for r in wrong:
    print("WRONG:", r)
sys.exit(1 if wrong else 0)
PY
start=$(date +%s.%N)
corpus=jepsen/tests/knossos/cas-register
slowest=0
for f in "$corpus"/good/*.edn "$corpus"/bad/*.edn; do
    s=$("$J" check --model cas-register --time-limit 60s --json "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cost"]["seconds"])' || true)
    slowest=$(awk -v a="$slowest" -v b="$s" 'BEGIN { print (b > a) ? b : a }')
done
echo "Knossos corpus ($(ls "$corpus"/good/*.edn "$corpus"/bad/*.edn | wc -l) histories): slowest search ${slowest} s, all in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s with process starts"
