#!/usr/bin/env bash
# Side-by-side migration's first round (issue 19), same machine, same run: `metactl copy` of a
# tree from one cluster to another (each 1 voter and 6 blockservers in 3 racks) beside `fs
# put` of the same bytes from the local disk into the destination cluster, and the time of a
# later round that finds nothing changed (it compares every file's checksum: its cost grows
# with the tree, not with the changes, until rounds run over snapshot diffs).
#   bench/copy.sh          (FILES=16 SIZE_MB=64 by default: 1 GiB)
FILES=${FILES:-16}
SIZE_MB=${SIZE_MB:-64}
. "$(dirname "$0")/peers.sh"

for side in old new; do
  "$bin/metactl" local up --dir "$work/$side" --voters 1 --observers 0 --blockservers 6 \
    --racks 3 --detach >/dev/null
done
cleanup_clusters() {
  for side in old new; do "$bin/metactl" local down --dir "$work/$side" >/dev/null 2>&1 || true; done
}
trap 'cleanup_clusters; cleanup' EXIT
new_uri="raftfs://$(python3 -c 'import json, sys; print(",".join(m["addr"] for m in json.load(open(sys.argv[1]))["meta"]))' "$work/new/cluster.json")"

mkdir -p "$work/local"
head -c $((SIZE_MB << 20)) /dev/urandom > "$work/local/f"
"$bin/metactl" --cluster "$work/old" fs mkdir -p /data/rs /data/rep
"$bin/metactl" --cluster "$work/old" ec set-policy /data/rs RS-3-2-1024k
for i in $(seq 1 "$FILES"); do
  dir=rep; [ $((i % 2)) -eq 0 ] && dir=rs
  "$bin/metactl" --cluster "$work/old" fs put "$work/local/f" "/data/$dir/f$i"
done
bytes=$((FILES * SIZE_MB << 20))

seconds() { python3 -c 'import time; print(time.time())'; }
"$bin/metactl" --cluster "$work/new" fs mkdir -p /put
echo "\$ metactl --cluster new fs put LOCAL /put/fN   ($FILES times)" >&2
t0=$(seconds)
for i in $(seq 1 "$FILES"); do
  "$bin/metactl" --cluster "$work/new" fs put "$work/local/f" "/put/f$i"
done
t1=$(seconds)
echo "\$ metactl --cluster old copy /data $new_uri/one --workers 1" >&2
one=$("$bin/metactl" --cluster "$work/old" copy /data "$new_uri/one" --workers 1 --json)
t2=$(seconds)
echo "\$ metactl --cluster old copy /data $new_uri/data --workers 4" >&2
first=$("$bin/metactl" --cluster "$work/old" copy /data "$new_uri/data" --workers 4 --json)
t3=$(seconds)
again=$("$bin/metactl" --cluster "$work/old" copy /data "$new_uri/data" --workers 4 --json)
t4=$(seconds)

python3 - "$bytes" "$t0" "$t1" "$t2" "$t3" "$t4" "$one" "$first" "$again" <<'PY'
import json, sys
total = int(sys.argv[1]); t0, t1, t2, t3, t4 = (float(x) for x in sys.argv[2:7])
one, first, again = (json.loads(a) for a in sys.argv[7:10])
mb = total / 1e6
put = mb / (t1 - t0)
print(f"\n{'run':<46}{'seconds':>9}{'MB/s':>9}")
print(f"{'fs put of the same bytes (local -> new), 1 at a time':<46}{t1 - t0:>9.1f}{put:>9.1f}")
print(f"{'copy old -> new, --workers 1':<46}{t2 - t1:>9.1f}{mb / (t2 - t1):>9.1f}")
print(f"{'copy old -> new, --workers 4':<46}{t3 - t2:>9.1f}{mb / (t3 - t2):>9.1f}")
print(f"{'copy, a round with nothing changed':<46}{t4 - t3:>9.1f}")
print(f"\nrounds: {one}\n        {first}\n        {again}")
print(f"copy (1 worker) / put = {(mb / (t2 - t1)) / put:.2f}; copy (4 workers) / put = {(mb / (t3 - t2)) / put:.2f}")
PY
