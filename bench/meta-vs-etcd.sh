#!/usr/bin/env bash
# raftfs metadata writes beside etcd puts, same machine, same run, same load generator:
#   loadgen meta --op create|mkdir against a local 3-voter raftfs (fsync before ack), and
#   loadgen etcd --op put against a 3-member etcd on loopback (fsync before ack),
# all at $CLIENTS concurrent clients, one after the other. Prints each report and the ratios.
#   bench/meta-vs-etcd.sh            (CLIENTS=64 OPS=200000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
. scripts/env.sh
CLIENTS=${CLIENTS:-64}
OPS=${OPS:-200000}
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

# Three voters and no observer: the same replication factor as the 3-member etcd.
"$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 0 --detach >/dev/null
endpoints=$($PEER up "$work/etcd")

run() { echo "\$ loadgen --json $*" >&2; "$bin/loadgen" --json "$@"; }
create=$(run meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
mkdir=$(run meta --op mkdir --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
put=$(run etcd --op put --clients "$CLIENTS" --ops "$OPS" --endpoints "$endpoints")

echo "$create"; echo "$mkdir"; echo "$put"
python3 - "$create" "$mkdir" "$put" "$work/raftfs/cluster.json" <<'PY'
import json, sys, urllib.request
create, mkdir, put = (json.loads(a) for a in sys.argv[1:4])
# Group commit on the active: client mutations per Raft entry (= per leader fsync).
for m in json.load(open(sys.argv[4]))["meta"]:
    text = urllib.request.urlopen(f"http://{m['metrics_addr']}/metrics").read().decode()
    vals = {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l.startswith("raftfs_meta_proposals_per_entry_")}
    n = vals.get("raftfs_meta_proposals_per_entry_count", 0)
    if n:
        print(f"node {m['id']} (active during the runs): {vals['raftfs_meta_proposals_per_entry_sum'] / n:.1f} mutations per entry over {n:.0f} entries")
print(f"\n{'run':<16}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
for name, r in (("raftfs create", create), ("raftfs mkdir", mkdir), ("etcd put", put)):
    print(f"{name:<16}{r['ops_per_sec']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}")
print(f"\nraftfs creates/s / etcd puts/s = {create['ops_per_sec'] / put['ops_per_sec']:.2f}")
print(f"raftfs mkdirs/s  / etcd puts/s = {mkdir['ops_per_sec'] / put['ops_per_sec']:.2f}")
PY
