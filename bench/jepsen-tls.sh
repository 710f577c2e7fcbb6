#!/usr/bin/env bash
# Every Jepsen campaign of CI (jepsen/tests/campaign.rs), on a cluster started with
# `metactl local up --tls` (every port mutual TLS, the clients and the members added by the
# membership nemesis authenticated by certificate), one after the other; prints each verdict
# and exits 1 if any run is not valid.
#   bench/jepsen-tls.sh            (TIME=25 RATE=25 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
. scripts/env.sh
TIME=${TIME:-25}
RATE=${RATE:-25}
cargo build --bin jepsen --bin metactl
store=$(mktemp -d "${TMPDIR:-/tmp}/raftfs-jepsen-tls.XXXXXX")
trap 'rm -rf "$store"' EXIT
failed=0
for run in register:kill register:pause register:member register:partition \
           rw-observer:kill rw-observer:pause rw-observer:member rw-observer:partition \
           namespace:kill,partition namespace:pause,member append:kill,partition; do
  workload=${run%%:*}; nemesis=${run#*:}
  if "$CARGO_TARGET_DIR/debug/jepsen" run --workload "$workload" --nemesis "$nemesis" \
       --time "$TIME" --rate "$RATE" --interval 4 --store "$store" --cluster-arg --tls >/dev/null 2>&1; then
    verdict=valid
  else
    verdict="NOT VALID (exit $?)"; failed=1
  fi
  results=$(ls -td "$store"/*/ | head -1)results.json
  counts=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print("%d operations ok, %d faults" % (sum(r["ops"].get("ok", {}).values()), sum(r["faults"].values())))' "$results")
  echo "$workload under $nemesis on TLS: $verdict ($counts)"
done
exit $failed
