#!/usr/bin/env bash
# A `copy --diff` round's time against the number of changes and the tree's size (issue 19).
# Two single-voter clusters, old and new, booted from the same generated namespace (FILES
# files under /gen: the same tree on both, as after an initial copy); / made snapshottable
# and snapshot s0 taken on both. Then, for each N of CHANGES: N generated files touched on
# the old one (loadgen meta --op touch --generated, 32 clients: their mtime set, spread
# over the whole tree), snapshot on it, and timed on the old:
#   metactl fs snapshot-diff / PREV NEXT --json              (the diff alone)
#   metactl copy / raftfs://NEW/ --diff PREV NEXT --json     (the round: check, diff, copy, snapshot)
# with the CPU seconds each member used during the round.
#   bench/copy-diff.sh                            (FILES=1000000, CHANGES="1000 10000 100000")
#   FILES=10000000 bench/copy-diff.sh
FILES=${FILES:-1000000}
CHANGES=${CHANGES:-"1000 10000 100000"}
. "$(dirname "$0")/peers.sh"
cleanup_both() {
  for c in old new; do "$bin/metactl" local down --dir "$work/$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup_both EXIT

"$bin/metactl" local generate --out "$work/seed" --files "$FILES" >/dev/null
for c in old new; do
  "$bin/metactl" local up --dir "$work/$c" --voters 1 --observers 0 --seed "$work/seed" --detach >/dev/null
  "$bin/metactl" --cluster "$work/$c" fs allow-snapshot / >/dev/null
  "$bin/metactl" --cluster "$work/$c" fs create-snapshot / s0 >/dev/null
done
new_uri="raftfs://$(python3 -c 'import json,sys; print(",".join(m["addr"] for m in json.load(open(sys.argv[1]))["meta"]))' "$work/new/cluster.json")/"
cpu() {  # CPU seconds of every metaserver of both clusters, summed per cluster: "OLD NEW"
  for c in old new; do
    python3 - "$work/$c/cluster.json" <<'PY'
import json, os, sys
tick = os.sysconf("SC_CLK_TCK")
total = 0.0
for m in json.load(open(sys.argv[1]))["meta"]:
    f = open(f"/proc/{m['pid']}/stat").read().rsplit(")", 1)[1].split()
    total += (int(f[11]) + int(f[12])) / tick
print(total)
PY
  done | paste -sd' '
}

prev=s0
echo "tree: $FILES generated files ($(( FILES * 2 )) objects)"
printf '%10s %12s %10s %10s %14s %14s\n' changes diff_entries diff_s round_s old_cpu_s new_cpu_s
for n in $CHANGES; do
  next="s$n"
  run meta --op touch --generated "$FILES" --clients 32 --ops "$n" --cluster "$work/old" >/dev/null
  "$bin/metactl" --cluster "$work/old" fs create-snapshot / "$next" >/dev/null
  t0=$(date +%s.%N)
  entries=$("$bin/metactl" --cluster "$work/old" fs snapshot-diff / "$prev" "$next" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
  t1=$(date +%s.%N)
  read -r c0old c0new <<<"$(cpu)"
  "$bin/metactl" --cluster "$work/old" copy / "$new_uri" --diff "$prev" "$next" --workers 8 --json >"$work/round.json"
  t2=$(date +%s.%N)
  read -r c1old c1new <<<"$(cpu)"
  python3 - "$n" "$entries" "$t0" "$t1" "$t2" "$c0old" "$c1old" "$c0new" "$c1new" <<'PY'
import sys
n, entries = sys.argv[1], sys.argv[2]
t0, t1, t2, a0, a1, b0, b1 = (float(x) for x in sys.argv[3:10])
print(f"{n:>10} {entries:>12} {t1 - t0:>10.2f} {t2 - t1:>10.2f} {a1 - a0:>14.2f} {b1 - b0:>14.2f}")
PY
  cat "$work/round.json" >&2
  prev=$next
done
