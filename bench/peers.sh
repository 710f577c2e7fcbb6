# Sourced by the bench scripts: builds the release binaries, makes a scratch directory that is
# removed on exit together with whatever runs in it, and defines
#   $bin          the release binaries (metactl, loadgen)
#   $work         the scratch directory (raftfs cluster in $work/raftfs, etcd in $work/etcd)
#   $PEER         the etcd peer script (../shared/bench/etcd-peer.sh, or $ETCD_PEER)
#   run ARGS...   loadgen --json ARGS, echoing the command on stderr
#   scrape DIR PREFIX   one JSON object {node id: {metric: value}} of every metaserver's
#                 /metrics lines that start with PREFIX
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-deps.sh
. scripts/env.sh
CLIENTS=${CLIENTS:-64}
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

run() { echo "\$ loadgen --json $*" >&2; "$bin/loadgen" --json "$@"; }

scrape() {
  python3 - "$1/cluster.json" "$2" <<'PY'
import json, sys, urllib.request
out = {}
for m in json.load(open(sys.argv[1]))["meta"]:
    text = urllib.request.urlopen(f"http://{m['metrics_addr']}/metrics").read().decode()
    out[m["id"]] = {"role": m["role"], **{l.split()[0]: float(l.split()[1])
                    for l in text.splitlines() if l.startswith(sys.argv[2])}}
print(json.dumps(out))
PY
}
