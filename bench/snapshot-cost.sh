#!/usr/bin/env bash
# What snapshots cost the writes (issue 19): one voter booted from a generated namespace
# (FILES files under /gen), then the same loads twice, without any snapshot and with / made
# snapshottable and a snapshot taken just before each load (so every change is the first to
# its record since that snapshot: the copy on first write's worst case):
#   loadgen meta --op touch --generated FILES --ops OPS   (set an existing file's mtime)
#   loadgen meta --op create --ops OPS                    (new files; their parent existed)
# with the metaserver's CPU per operation.
#   bench/snapshot-cost.sh        (FILES=1000000 OPS=50000 CLIENTS=32)
FILES=${FILES:-1000000}
OPS=${OPS:-50000}
CLIENTS=${CLIENTS:-32}
. "$(dirname "$0")/peers.sh"

"$bin/metactl" local generate --out "$work/seed" --files "$FILES" >/dev/null
"$bin/metactl" local up --dir "$work/raftfs" --voters 1 --observers 0 --seed "$work/seed" --detach >/dev/null
pids=$(raftfs_pids "$work/raftfs")
ctl() { "$bin/metactl" --cluster "$work/raftfs" "$@" >/dev/null; }
report() {  # label, then the loadgen report on stdin
  python3 -c '
import json, sys
r = json.load(sys.stdin)
cells = (sys.argv[1], r["ops_per_sec"], r["p50_ms"], r["p99_ms"], r["server_cpu_us_per_op"][0])
print("%-34s %9.0f %7.2f %7.2f %9.1f" % cells)' "$1"
}
printf '%-34s %9s %7s %7s %9s\n' load ops/s p50_ms p99_ms cpu_us/op
for with in no yes; do
  if [ "$with" = yes ]; then ctl fs allow-snapshot /; fi
  [ "$with" = yes ] && ctl fs create-snapshot / touch
  run_cpu "$pids" meta --op touch --generated "$FILES" --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs" | report "touch, snapshot: $with"
  [ "$with" = yes ] && ctl fs create-snapshot / create
  run_cpu "$pids" meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs" | report "create, snapshot: $with"
done
