#!/usr/bin/env bash
# Deterministic simulation campaign (issue 21): N seeds of the standard plan (3 members,
# 6 lin-kv clients, 20 simulated seconds of crashes, power cuts, partitions, message loss
# and storage errors), each history checked for linearizability, through the release
# `sim-run`, in J processes. Prints runs per second, the CPU seconds per run, and the seeds
# that failed (each replays with `sim-run --seed S`).
#
#   bench/sim.sh [N] [FIRST]      N seeds from FIRST (defaults: 100, a random FIRST)
#   J=1 bench/sim.sh ...          processes (default 2)
#   BUG=reads-without-lease bench/sim.sh 100 0   a debug build with a bug switch: in how many
#                                 seeds it is found (local-reads, ack-before-fsync, ...)
#   RAFTFS_BIN=DIR bench/sim.sh   use DIR/sim-run instead of building
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
FIRST=${2:-$(( (RANDOM << 15 | RANDOM) * 1000 ))}
J=${J:-2}
profile=release
[[ -n "${BUG:-}" ]] && profile=debug
if [[ -z "${RAFTFS_BIN:-}" ]]; then
    . scripts/env.sh
    if [[ $profile == release ]]; then
        cargo build --release -q -p raftfs-sim --bin sim-run
    else
        cargo build -q -p raftfs-sim --bin sim-run
    fi
    RAFTFS_BIN=${CARGO_TARGET_DIR:-target}/$profile
fi
work=$(mktemp -d)
# Stopped early, the summary below still runs: the seeds that ran are counted and listed.
trap 'rm -rf "$work"' EXIT
# Each job is /usr/bin/time running sim-run: the sim-run under it is stopped too (killing
# time alone leaves it running, writing into the removed work directory).
trap 'for p in $(jobs -p); do pkill -TERM -P "$p"; kill "$p"; done 2>/dev/null || true' INT TERM
bug=()
[[ -n "${BUG:-}" ]] && bug=(--bug "$BUG")
echo "sim: $N seeds from $FIRST in $J processes${BUG:+, bug switch $BUG}"
start=$(date +%s.%N)
for ((j = 0; j < J; j++)); do
    from=$((FIRST + j * N / J))
    to=$((FIRST + (j + 1) * N / J))
    /usr/bin/time -f "%U %S" -o "$work/cpu.$j" \
        "$RAFTFS_BIN/sim-run" --seeds "$from..$to" "${bug[@]}" > "$work/out.$j" 2> "$work/err.$j" &
done
wait || true
end=$(date +%s.%N)
cat "$work"/out.* | grep -E '^seed [0-9]+: (INVALID|FAILED|a panic)' | cut -c1-300 || true
python3 - "$work" "$N" "$start" "$end" <<'PY'
import glob, re, sys
work, n, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
# Counted from each seed's own line, so that a campaign stopped early (Ctrl-C, a kill)
# still reports the seeds it ran, and which.
runs = failed = 0
seeds, ranges = [], []
for path in sorted(glob.glob(f"{work}/out.*")):
    done = []
    for line in open(path):
        m = re.match(r"seed (\d+): (valid|INVALID|FAILED)", line)
        if m:
            done.append(int(m.group(1)))
            if m.group(2) != "valid":
                seeds.append(int(m.group(1)))
    runs += len(done)
    if done:
        ranges.append(f"{min(done)}..{max(done) + 1}")
failed = len(seeds)
cpu = 0.0
for path in glob.glob(f"{work}/cpu.*"):
    for line in open(path):
        parts = line.split()
        if len(parts) == 2:
            cpu += float(parts[0]) + float(parts[1])
wall = end - start
print(f"{runs}/{n} runs in {wall:.0f} s: {runs / wall:.2f} runs/s, "
      f"{cpu / max(runs, 1):.2f} CPU s per run; {failed} failed"
      + (f": seeds {sorted(seeds)}" if seeds else "")
      + f"; seeds run: {', '.join(ranges)}")
sys.exit(1 if failed or runs != n else 0)
PY
