#!/usr/bin/env bash
# Data-path throughput, same machine, same run, same load generator (issue 5):
#   loadgen data --op disk      sequential writes + fsync into local files: the disk's bandwidth
#   loadgen data --op write|read for REPLICATED-3 and RS-6-3-1024k on a local cluster of
#                               3 metaservers and 9 blockservers in 3 racks
#   loadgen data --op degraded-read  after killing the 3 blockservers of one rack
# and the goal's ratio: RS-6-3 write / (disk bandwidth x 6/9).
#   bench/data.sh                (SIZE=1GiB DATA_CLIENTS=4 by default)
SIZE=${SIZE:-1GiB}
DATA_CLIENTS=${DATA_CLIENTS:-4}
. "$(dirname "$0")/peers.sh"

"$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 0 \
  --blockservers 9 --racks 3 --detach >/dev/null
c=(--size "$SIZE" --clients "$DATA_CLIENTS")

disk=$(run data --op disk "${c[@]}" --disk-dir "$work/disk")
rw=$(run data --op write --policy REPLICATED-3 "${c[@]}" --cluster "$work/raftfs")
rr=$(run data --op read --policy REPLICATED-3 "${c[@]}" --cluster "$work/raftfs")
ew=$(run data --op write --policy RS-6-3-1024k "${c[@]}" --cluster "$work/raftfs")
er=$(run data --op read --policy RS-6-3-1024k "${c[@]}" --cluster "$work/raftfs")
ed=$(run data --op degraded-read --kill 3 --policy RS-6-3-1024k "${c[@]}" --cluster "$work/raftfs")
rd=$(run data --op read --policy REPLICATED-3 "${c[@]}" --cluster "$work/raftfs")

python3 - "$disk" "$rw" "$rr" "$ew" "$er" "$ed" "$rd" <<'PY'
import json, sys
disk, rw, rr, ew, er, ed, rd = (json.loads(a) for a in sys.argv[1:8])
print(f"\n{'run':<44}{'MB/s':>9}{'p50 s':>8}{'max s':>8}{'errors':>8}")
for name, r in (("local disk, sequential write + fsync", disk),
                ("REPLICATED-3 write", rw), ("REPLICATED-3 read", rr),
                ("RS-6-3-1024k write", ew), ("RS-6-3-1024k read", er),
                ("RS-6-3-1024k read, a rack (3 servers) dead", ed),
                ("REPLICATED-3 read, a rack (3 servers) dead", rd)):
    print(f"{name:<44}{r['mb_per_sec']:>9.1f}{r['p50_ms']/1000:>8.2f}{r['max_ms']/1000:>8.2f}{r['errors']:>8}")
goal = disk["mb_per_sec"] * 6 / 9
print(f"\nRS-6-3 write / (disk x 6/9) = {ew['mb_per_sec'] / goal:.2f} (goal >= 0.5)")
PY
