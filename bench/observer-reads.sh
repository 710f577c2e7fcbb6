#!/usr/bin/env bash
# Read scaling and observer lag, same machine, same run, same load generator:
#   loadgen meta --op stat on a 3-voter + 2-observer raftfs, reads on the active and then on
#   the observers; loadgen etcd --op get on a 3-member etcd, linearizable and serializable
#   (etcd's follower-style reads, the peer of observer reads); then a create load while the
#   observers' apply lag (time from the active fixing an entry to the observer applying it)
#   is read from their /metrics.
#   bench/observer-reads.sh            (CLIENTS=64 OPS=100000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
. scripts/env.sh
CLIENTS=${CLIENTS:-64}
OPS=${OPS:-100000}
PEER=${ETCD_PEER:-../shared/bench/etcd-peer.sh}
[ -x "$PEER" ] || PEER="bash $PEER"

cargo build --release --bin metactl --bin loadgen
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/raftfs-bench.XXXXXX")
cleanup() {
  "$bin/metactl" local down --dir "$work/raftfs" >/dev/null 2>&1 || true
  $PEER down "$work/etcd" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 2 --detach >/dev/null
endpoints=$($PEER up "$work/etcd")

run() { echo "\$ loadgen --json $*" >&2; "$bin/loadgen" --json "$@"; }
active=$(run meta --op stat --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
observer=$(run --read-mode observer meta --op stat --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
lin=$(run etcd --op get --clients "$CLIENTS" --ops "$OPS" --endpoints "$endpoints")
ser=$(run etcd --op get --serializable --clients "$CLIENTS" --ops "$OPS" --endpoints "$endpoints")
# Apply lag under write load: reset by reading the histograms before and after.
python3 - "$work/raftfs/cluster.json" > "$work/lag-before.json" <<'PY'
import json, sys, urllib.request
out = {}
for m in json.load(open(sys.argv[1]))["meta"]:
    text = urllib.request.urlopen(f"http://{m['metrics_addr']}/metrics").read().decode()
    out[m["id"]] = {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l.startswith("raftfs_meta_observer_apply_lag_seconds")}
print(json.dumps(out))
PY
create=$(run meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")

echo "$active"; echo "$observer"; echo "$lin"; echo "$ser"; echo "$create"
python3 - "$active" "$observer" "$lin" "$ser" "$create" "$work/raftfs/cluster.json" "$work/lag-before.json" <<'PY'
import json, sys, urllib.request
active, observer, lin, ser, create = (json.loads(a) for a in sys.argv[1:6])
print(f"\n{'run':<28}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
for name, r in (("raftfs stat on the active", active), ("raftfs stat on observers", observer),
                ("etcd get (linearizable)", lin), ("etcd get --serializable", ser),
                ("raftfs create (lag load)", create)):
    print(f"{name:<28}{r['ops_per_sec']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}")
print(f"\nobserver reads / active reads        = {observer['ops_per_sec'] / active['ops_per_sec']:.2f}")
print(f"raftfs observer stat / etcd serializable get = {observer['ops_per_sec'] / ser['ops_per_sec']:.2f}")
before = json.load(open(sys.argv[7]))
print("\napply lag during the create load (active fixes an entry -> member applies it):")
for m in json.load(open(sys.argv[6]))["meta"]:
    text = urllib.request.urlopen(f"http://{m['metrics_addr']}/metrics").read().decode()
    after = {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l.startswith("raftfs_meta_observer_apply_lag_seconds")}
    b = before.get(str(m["id"]), {})
    d = {k: v - b.get(k, 0.0) for k, v in after.items()}
    n = d.get("raftfs_meta_observer_apply_lag_seconds_count", 0)
    if not n:
        continue
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in d.items() if 'le="' in k and '+Inf' not in k)
    p99 = next((le for le, c in buckets if c >= 0.99 * n), float("inf"))
    mean = d["raftfs_meta_observer_apply_lag_seconds_sum"] / n * 1000
    print(f"  node {m['id']} ({m['role']}): mean {mean:.2f} ms, p99 <= {p99 * 1000:.1f} ms over {n:.0f} entries")
PY
