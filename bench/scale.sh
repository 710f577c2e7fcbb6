#!/usr/bin/env bash
# The namespace at scale (issue #15): for each size in SIZES (namespace objects as HDFS counts
# them: files, directories and blocks; the generated files have one block group each, so
# about half the objects are files), a generated namespace booted on a cluster of VOTERS
# metaservers, and:
#   - generation: seconds, objects/s, data bytes per object (`metactl local generate`);
#   - start to serving: every member stopped, then started again, until a stat of the last
#     generated file answers (RocksDB opens the namespace; nothing is loaded into memory);
#   - resident memory of each member idle, and its peak under the stat and create loads;
#   - stat of random generated files at CLIENTS clients (p50/p99, CPU per op), and at
#     FEW_CLIENTS clients (latency without the queue of a saturated machine);
#   - creates/s at CLIENTS clients, and the same on an empty namespace in the same run;
#   - failover: kill -9 of the active until a write succeeds again (and the same on the empty
#     namespace, for comparison);
#   - at sizes up to SNAPSHOT_MAX: a new member (observer) catching up through a snapshot,
#     seconds and snapshot bytes;
# and once: a paged `metactl fs ls` of a directory of LS_FILES entries.
#   bench/scale.sh                               (SIZES="1000000 10000000 100000000")
#   SIZES=1000000 bench/scale.sh                 (one size)
#   VOTERS=1 SIZES=100000000 bench/scale.sh      (one voter, where three copies do not fit)
#   RAFTFS_BIN=/other/target/release bench/scale.sh
SIZES=${SIZES:-"1000000 10000000 100000000"}
VOTERS=${VOTERS:-3}
STAT_OPS=${STAT_OPS:-200000}
CREATE_OPS=${CREATE_OPS:-100000}
SNAPSHOT_MAX=${SNAPSHOT_MAX:-10000000}
LS_FILES=${LS_FILES:-1000000}
FEW_CLIENTS=${FEW_CLIENTS:-8}
. "$(dirname "$0")/peers.sh"
ctl() { "$bin/metactl" "$@"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

# "id:VmRSS/VmHWM" (MiB) of each member of the cluster in $1
rss() {
  for p in $(raftfs_pids "$1" | tr , ' '); do
    awk -v p="$p" '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {printf "%.0f/%.0f ", r/1024, h/1024}' "/proc/$p/status"
  done
}
reset_peaks() { for p in $(raftfs_pids "$1" | tr , ' '); do echo 5 > "/proc/$p/clear_refs"; done; }
# the loadgen report's figures of interest, one line
figures() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
print(json.dumps({k: r.get(k) for k in ("ops_per_sec", "p50_ms", "p99_ms", "errors",
                  "server_cpu_us_per_op", "client_cpu_us_per_op")}))'
}
# waits until a stat of $2 answers on the cluster in $1
wait_serving() {
  until ctl --cluster "$1" --timeout 1s fs stat "$2" >/dev/null 2>&1; do sleep 0.05; done
}
active_id() {
  ctl --cluster "$1" cluster status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["leader"])'
}
# kill -9 of the active of the cluster in $1 until a mkdir succeeds; the member is restarted
failover() {
  local leader t
  leader=$(active_id "$1")
  t=$(now)
  ctl local stop --dir "$1" --id "$leader" --kill >/dev/null
  ctl --cluster "$1" fs mkdir -p "/failover-probe-$RANDOM" >/dev/null
  echo "failover (kill -9 of the active until a mkdir succeeds): $(since "$t") s"
  ctl local start --dir "$1" --id "$leader" >/dev/null
  sleep 3
}

echo "== an empty namespace, for the create rate ($VOTERS voters)"
ctl local up --dir "$work/empty" --voters "$VOTERS" --observers 0 --detach >/dev/null
empty=$(run_cpu "$(raftfs_pids "$work/empty")" meta --op create --clients "$CLIENTS" --ops "$CREATE_OPS" --cluster "$work/empty" | figures)
echo "creates on an empty namespace: $empty"
if [ "$VOTERS" -ge 3 ]; then echo -n "empty namespace: "; failover "$work/empty"; fi
ctl local down --dir "$work/empty" >/dev/null
rm -rf "$work/empty"

for objects in $SIZES; do
  files=$((objects / 2))
  seed="$work/seed-$objects"
  echo
  echo "== $objects objects ($files files, one block group each; 1,000 files per directory)"
  gen=$(ctl local generate --out "$seed" --files "$files")
  echo "generated: $gen"
  du -sb "$seed" | awk -v o="$objects" '{printf "data: %.2f GB, %.1f bytes per object\n", $1/1e9, $1/o}'
  last=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["last_file"])' "$gen")
  dir="$work/raftfs-$objects"
  t=$(now)
  ctl local up --dir "$dir" --voters "$VOTERS" --observers 0 --seed "$seed" --detach >/dev/null
  echo "local up --seed (start, elect, checkpoint): $(since "$t") s"
  wait_serving "$dir" "$last"

  # Start to serving: every member stopped and started again.
  for id in $(seq 1 "$VOTERS"); do ctl local stop --dir "$dir" --id "$id" >/dev/null; done
  t=$(now)
  for id in $(seq 1 "$VOTERS"); do ctl local start --dir "$dir" --id "$id" >/dev/null; done
  wait_serving "$dir" "$last"
  echo "start to serving (all $VOTERS members restarted, until a stat answers): $(since "$t") s"
  sleep 10
  echo "RSS idle (MiB, VmRSS/VmHWM per member): $(rss "$dir")"

  pids=$(raftfs_pids "$dir")
  reset_peaks "$dir"
  stat=$(run_cpu "$pids" meta --op stat --generated "$files" --clients "$CLIENTS" --ops "$STAT_OPS" --cluster "$dir" | figures)
  echo "stat of random files, $CLIENTS clients: $stat"
  echo "RSS peak under the stat load (MiB): $(rss "$dir")"
  few=$(run_cpu "$pids" meta --op stat --generated "$files" --clients "$FEW_CLIENTS" --ops "$STAT_OPS" --cluster "$dir" | figures)
  echo "stat of random files, $FEW_CLIENTS clients: $few"
  reset_peaks "$dir"
  create=$(run_cpu "$pids" meta --op create --clients "$CLIENTS" --ops "$CREATE_OPS" --cluster "$dir" | figures)
  echo "creates, $CLIENTS clients: $create"
  echo "RSS peak under the create load (MiB): $(rss "$dir")"
  python3 -c "
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f'creates/s at $objects objects / on an empty namespace: {a[\"ops_per_sec\"]} / {b[\"ops_per_sec\"]} = {a[\"ops_per_sec\"] / max(b[\"ops_per_sec\"], 1):.2f}')" "$create" "$empty"

  if [ "$VOTERS" -ge 3 ]; then failover "$dir"; fi

  if [ "$objects" -le "$SNAPSHOT_MAX" ]; then
    ctl --cluster "$dir" cluster checkpoint
    t=$(now)
    ctl --timeout 1800s local add-observer --dir "$dir" >/dev/null
    secs=$(since "$t")
    obs=$(python3 -c 'import json, sys; print(max(m["id"] for m in json.load(open(sys.argv[1]))["meta"]))' "$dir/cluster.json")
    snap=$(du -sb "$dir/meta-$obs" | cut -f1)
    echo "a new member caught up through a snapshot in $secs s; its data directory: $(python3 -c "print(f'{$snap/1e9:.2f}')") GB"
  fi
  ctl local down --dir "$dir" >/dev/null
  rm -rf "$dir" "$seed"
done

echo
echo "== a paged ls of a directory of $LS_FILES entries (one voter)"
ctl local generate --out "$work/seed-ls" --files "$LS_FILES" --files-per-dir "$LS_FILES" >/dev/null
ctl local up --dir "$work/ls" --voters 1 --observers 0 --seed "$work/seed-ls" --detach >/dev/null
t=$(now)
lines=$(ctl --cluster "$work/ls" fs ls /gen | wc -l)
echo "metactl fs ls /gen: $lines lines in $(since "$t") s"
ctl local down --dir "$work/ls" >/dev/null
