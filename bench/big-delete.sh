#!/usr/bin/env bash
# A recursive delete of a large tree on a 3-voter raftfs (issue #15): FILES files made by
#   loadgen meta --op create --clients 32 --ops $FILES  (1,000 files per directory, /loadgen)
# (or generated, GENERATED=1), then `metactl fs rm -r` of the tree. Prints how long the client waited, how long until the
# tree was reclaimed (the active's reclaim worker: raftfs_meta_worker_items_total), and each
# member's resident memory before the delete and at its peak during it (VmHWM, reset just
# before the delete through /proc/PID/clear_refs; needs root or the processes' owner).
#   bench/big-delete.sh                    (FILES=1000000)
#   GENERATED=1 FILES=10000000 bench/big-delete.sh   (the tree generated, /gen deleted)
#   RAFTFS_BIN=/other/target/release bench/big-delete.sh   (binaries of another commit)
FILES=${FILES:-1000000}
. "$(dirname "$0")/peers.sh"

if [ -n "${GENERATED:-}" ]; then
  # The tree from `metactl local generate` (1,000 files per directory, one block group
  # each), every voter booted from it: sizes loadgen would take hours to create.
  tree=/gen
  "$bin/metactl" local generate --out "$work/seed" --files "$FILES"
  "$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 0 --seed "$work/seed" --detach >/dev/null
else
  tree=/loadgen
  "$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 0 --detach >/dev/null
  run meta --op create --clients 32 --ops "$FILES" --cluster "$work/raftfs" >/dev/null
fi
pids=$(raftfs_pids "$work/raftfs")

rss() {  # "pid:VmRSS/VmHWM MiB" of each member
  for p in ${pids//,/ }; do
    awk -v p="$p" '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {printf "%s:%.0f/%.0f ", p, r/1024, h/1024}' "/proc/$p/status"
  done
}
reclaimed() {  # the reclaim worker's items on every member, summed (only the active's grow),
  # and whether a round is running anywhere: "ITEMS RUNNING"
  scrape "$work/raftfs" 'raftfs_meta_worker_' | python3 -c '
import json, sys
members = json.load(sys.stdin).values()
def total(name):
    return int(sum(v for m in members for k, v in m.items() if k == name))
print(total("raftfs_meta_worker_items_total{worker=\"reclaim\"}"), total("raftfs_meta_worker_running{worker=\"reclaim\"}"))'
}

sleep 5
echo "before the delete (MiB, VmRSS/VmHWM): $(rss)"
for p in ${pids//,/ }; do echo 5 > "/proc/$p/clear_refs"; done
start=$(date +%s.%N)
"$bin/metactl" --cluster "$work/raftfs" fs rm -r "$tree"
acked=$(date +%s.%N)
# Reclaimed when no round runs and the worker's count has not grown for 5 s (its rounds come
# every 500 ms while anything is left; binaries without the worker deleted it all at once).
last=-1; still=0
while [ "$still" -lt 5 ]; do
  read -r now running <<<"$(reclaimed 2>/dev/null || echo "0 0")"
  if [ "$now" = "$last" ] && [ "$running" = 0 ]; then still=$((still + 1)); else still=0; last=$now; fi
  sleep 1
done
done_at=$(( $(date +%s) - 5 ))
python3 - "$start" "$acked" "$done_at" "$last" "$FILES" <<'PY'
import sys
start, acked, done, items, files = (float(a) for a in sys.argv[1:6])
print(f"rm -r of {files:.0f} files: the client waited {acked - start:.2f} s; "
      f"reclaimed {items:.0f} inodes by {max(done - start, acked - start):.0f} s after the delete")
PY
echo "after (MiB, VmRSS/peak VmHWM since the delete): $(rss)"
