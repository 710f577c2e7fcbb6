#!/usr/bin/env bash
# Read scaling and observer lag, same machine, same run, same load generator:
#   loadgen meta --op stat on a 3-voter + 2-observer raftfs, reads on the active and then on
#   the observers; read-your-own-writes lag (--op ryow: create on the active, time the first
#   read of it on an observer) and msync latency, at 1 client and at $CLIENTS; loadgen etcd --op get on a 3-member etcd, linearizable and serializable
#   (etcd's follower-style reads, the peer of observer reads); then a create load while the
#   observers' apply lag (time from the active fixing an entry to the observer applying it)
#   is read from their /metrics.
#   bench/observer-reads.sh            (CLIENTS=64 OPS=100000 by default)
OPS=${OPS:-100000}
. "$(dirname "$0")/peers.sh"

"$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 2 --detach >/dev/null
endpoints=$($PEER up "$work/etcd")

active=$(run meta --op stat --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
observer=$(run --read-mode observer meta --op stat --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
ryow1=$(run meta --op ryow --clients 1 --ops 2000 --cluster "$work/raftfs")
ryow=$(run meta --op ryow --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
msync1=$(run meta --op msync --clients 1 --ops 5000 --cluster "$work/raftfs")
msync=$(run meta --op msync --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
lin=$(run etcd --op get --clients "$CLIENTS" --ops "$OPS" --endpoints "$endpoints")
ser=$(run etcd --op get --serializable --clients "$CLIENTS" --ops "$OPS" --endpoints "$endpoints")
# Apply lag under write load: the histograms' growth over the create run.
before=$(scrape "$work/raftfs" raftfs_meta_observer_apply_lag_seconds)
create=$(run meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
after=$(scrape "$work/raftfs" raftfs_meta_observer_apply_lag_seconds)

echo "$active"; echo "$observer"; echo "$ryow1"; echo "$ryow"; echo "$msync1"; echo "$msync"; echo "$lin"; echo "$ser"; echo "$create"
python3 - "$active" "$observer" "$lin" "$ser" "$create" "$before" "$after" "$ryow1" "$ryow" "$msync1" "$msync" <<'PY'
import json, sys
active, observer, lin, ser, create, before, after, ryow1, ryow, msync1, msync = (json.loads(a) for a in sys.argv[1:12])
print(f"\n{'run':<34}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}")
for name, r in (("raftfs stat on the active", active), ("raftfs stat on observers", observer),
                ("RYOW lag, 1 client", ryow1), (f"RYOW lag, {ryow['clients']} clients", ryow),
                ("msync, 1 client", msync1), (f"msync, {msync['clients']} clients", msync),
                ("etcd get (linearizable)", lin), ("etcd get --serializable", ser),
                ("raftfs create (lag load)", create)):
    print(f"{name:<34}{r['ops_per_sec']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['max_ms']:>9.2f}{r['errors']:>8}")
print(f"\nobserver reads / active reads        = {observer['ops_per_sec'] / active['ops_per_sec']:.2f}")
print(f"raftfs observer stat / etcd serializable get = {observer['ops_per_sec'] / ser['ops_per_sec']:.2f}")
print("\napply lag during the create load (active fixes an entry -> member applies it):")
for node, a in after.items():
    role = a.pop("role")
    b = before.get(node, {})
    d = {k: v - b.get(k, 0.0) for k, v in a.items() if k != "role"}
    n = d.get("raftfs_meta_observer_apply_lag_seconds_count", 0)
    if not n:
        continue
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in d.items() if 'le="' in k and '+Inf' not in k)
    p99 = next((le for le, c in buckets if c >= 0.99 * n), float("inf"))
    mean = d["raftfs_meta_observer_apply_lag_seconds_sum"] / n * 1000
    print(f"  node {node} ({role}): mean {mean:.2f} ms, p99 <= {p99 * 1000:.1f} ms over {n:.0f} entries")
PY
