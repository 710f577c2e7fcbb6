#!/usr/bin/env bash
# The fleet simulator (crate raftfs-fleet, issue 23): the active's real placement, scan,
# scheduler and budgets against simulated blockservers, on simulated time.
#
#   bench/fleet.sh                 # calibration: bench/rebuild.sh's three runs, SEEDS seeds
#   SEEDS=50 FIRST=1 bench/fleet.sh
#
# Prints the simulator's figures beside the real benchmark's (README, "Rebuilding a lost
# blockserver"), as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-20}
FIRST=${FIRST:-1}
cargo build --release -q -p raftfs-fleet
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
echo "== calibration: $SEEDS seeds from $FIRST (real: 2.0 and 4.0 cross-rack bytes per byte rebuilt, budget 1.011)" >&2
/usr/bin/time -f "%e s wall, %U s user, %M KiB max RSS" "$bin/fleet-sim" calibrate --seed "$FIRST" --seeds "$SEEDS"
