#!/usr/bin/env bash
# Builds raftfs (release), starts a local cluster of real processes (3 voters, 1 observer),
# and does real work on it through metactl, reading on the observer too. The cluster keeps running; the last lines say how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
. scripts/env.sh
dir="${RAFTFS_DEMO_DIR:-${TMPDIR:-/tmp}/raftfs-demo}"

cargo build --release --bin metactl
ctl="$CARGO_TARGET_DIR/release/metactl"
[ -f "$dir/cluster.json" ] && "$ctl" local down --dir "$dir" 2>/dev/null || true
rm -rf "$dir"

echo "== metactl local up --voters 3 --observers 1"
"$ctl" local up --dir "$dir" --voters 3 --observers 1 --detach
echo "== metactl cluster status"
"$ctl" --cluster "$dir" cluster status
echo "== metactl fs mkdir -p /user/demo/logs /user/demo/data"
"$ctl" --cluster "$dir" fs mkdir -p /user/demo/logs /user/demo/data
"$ctl" --cluster "$dir" fs touch /user/demo/data/part-0000
echo "== metactl fs ls /user/demo"
"$ctl" --cluster "$dir" fs ls /user/demo
echo "== metactl fs stat /user/demo/data/part-0000"
"$ctl" --cluster "$dir" fs stat /user/demo/data/part-0000
echo "== metactl --read-mode observer --auto-msync always fs ls /user/demo/data   (read on the observer)"
"$ctl" --cluster "$dir" --read-mode observer --auto-msync always fs ls /user/demo/data
echo
echo "The cluster keeps running. Try:  $ctl --cluster $dir fs ls /user/demo"
echo "Stop it with:                     $ctl local down --dir $dir"
