#!/usr/bin/env bash
# The fleet simulator's scenarios at scale (issue 23): 10,000 blockservers in 200 racks over
# 2 datacenters, FLEET_GROUPS groups (half RS-6-3-1024k, half REPLICATED-3, 1-64 MiB), placed by the
# real placement code; each scenario's checks (budgets per simulated second, xmits, order)
# and the real code's CPU time and memory.
#
#   bench/fleet-scale.sh                    # every scenario, 1 million groups
#   FLEET_GROUPS=10000000 bench/fleet-scale.sh rack
#   bench/fleet-scale.sh server rack link decommission change bugs
#
# Each scenario's JSON goes to $OUT/<name>.json and a summary to stdout. The bug runs need
# the `bug-switches` build (never a default one).
set -euo pipefail
cd "$(dirname "$0")/.."
FLEET_GROUPS=${FLEET_GROUPS:-1000000}
OUT=${OUT:-/tmp/fleet-scale}
mkdir -p "$OUT"
cargo build --release -q -p raftfs-fleet --features bug-switches
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/fleet-sim
fleet="--servers 10000 --racks 200 --datacenters 2 --groups $FLEET_GROUPS"
# 1 GB/s each way between the datacenters.
budgets="--dc-pair dc1:dc2=1000 --dc-pair dc2:dc1=1000"
run() {
  local name=$1
  shift
  echo "== $name: fleet-sim run $fleet $*"
  /usr/bin/time -f "   %e s wall, %M KiB max RSS" "$bin" run $fleet "$@" > "$OUT/$name.json"
  python3 bench/fleet-summary.py < "$OUT/$name.json" | sed 's/^/   /'
}
scenarios=${*:-server rack link decommission change bugs}
for s in $scenarios; do
  case $s in
    server) run server --seconds 3600 --kill-servers 1 --at 5 $budgets ;;
    rack) run rack --seconds 3600 --kill-rack r3 --at 5 $budgets ;;
    # r3 (in dc1) lost as the link between the datacenters goes down for an hour.
    link) run link --seconds 7200 --kill-rack r3 --at 5 --link-down dc1:dc2 --link-down-at 5 --link-down-for 3600 $budgets ;;
    decommission) run decommission --seconds 7200 --decommission-rack r3 --at 5 $budgets ;;
    # The budgets cut to 200 MB/s 30 s into the rack's rebuild.
    change) run change --seconds 3600 --kill-rack r3 --at 5 $budgets --change-at 30 --change-dc-pair dc1:dc2=200 --change-dc-pair dc2:dc1=200 ;;
    bugs)
      run bug-xmits --seconds 3600 --kill-rack r3 --at 5 $budgets --bug unweighted-xmits
      run bug-budgets --seconds 3600 --kill-rack r3 --at 5 $budgets --bug ignore-budgets ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
