#!/usr/bin/env bash
# A recursive delete of a large tree on a 3-voter raftfs (issue #15): FILES files made by
#   loadgen meta --op create --clients 32 --ops $FILES  (1,000 files per directory, /loadgen)
# then `metactl fs rm -r /loadgen`. Prints how long the client waited, how long until the
# tree was reclaimed (the active's reclaim worker: raftfs_meta_worker_items_total), and each
# member's resident memory before the delete and at its peak during it (VmHWM, reset just
# before the delete through /proc/PID/clear_refs; needs root or the processes' owner).
#   bench/big-delete.sh                    (FILES=1000000)
#   RAFTFS_BIN=/other/target/release bench/big-delete.sh   (binaries of another commit)
FILES=${FILES:-1000000}
. "$(dirname "$0")/peers.sh"

"$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 0 --detach >/dev/null
run meta --op create --clients 32 --ops "$FILES" --cluster "$work/raftfs" >/dev/null
pids=$(raftfs_pids "$work/raftfs")

rss() {  # "pid:VmRSS/VmHWM MiB" of each member
  for p in ${pids//,/ }; do
    awk -v p="$p" '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {printf "%s:%.0f/%.0f ", p, r/1024, h/1024}' "/proc/$p/status"
  done
}
reclaimed() {  # the reclaim worker's items on every member, summed (only the active's grow)
  scrape "$work/raftfs" 'raftfs_meta_worker_items_total{worker="reclaim"}' |
    python3 -c 'import json,sys; print(int(sum(sum(v for k, v in m.items() if k != "role") for m in json.load(sys.stdin).values())))'
}

sleep 5
echo "before the delete (MiB, VmRSS/VmHWM): $(rss)"
for p in ${pids//,/ }; do echo 5 > "/proc/$p/clear_refs"; done
start=$(date +%s.%N)
"$bin/metactl" --cluster "$work/raftfs" fs rm -r /loadgen
acked=$(date +%s.%N)
# Reclaimed when the worker's count stops growing for 5 s (binaries without the worker:
# the delete was whole in its entry).
last=-1; still=0
while [ "$still" -lt 5 ]; do
  now=$(reclaimed 2>/dev/null || echo 0)
  if [ "$now" = "$last" ]; then still=$((still + 1)); else still=0; last=$now; fi
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
