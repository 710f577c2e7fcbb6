#!/usr/bin/env bash
# Builds raftfs (release), starts a local cluster of real processes (3 voters, 1 observer,
# 9 blockservers in 3 racks), and does real work on it through metactl: directories, an
# erasure-coded (RS-6-3) and a replicated file written, read back and checked, fsck, a read
# on the observer. The cluster keeps running; the last lines say how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
. scripts/env.sh
dir="${RAFTFS_DEMO_DIR:-${TMPDIR:-/tmp}/raftfs-demo}"

cargo build --release --bin metactl
ctl="$CARGO_TARGET_DIR/release/metactl"
[ -f "$dir/cluster.json" ] && "$ctl" local down --dir "$dir" 2>/dev/null || true
rm -rf "$dir"

echo "== metactl local up --voters 3 --observers 1 --blockservers 9 --racks 3"
"$ctl" local up --dir "$dir" --voters 3 --observers 1 --blockservers 9 --racks 3 --detach
echo "== metactl cluster status"
"$ctl" --cluster "$dir" cluster status
echo "== metactl fs mkdir -p /user/demo/logs /user/demo/data"
"$ctl" --cluster "$dir" fs mkdir -p /user/demo/logs /user/demo/data
"$ctl" --cluster "$dir" fs touch /user/demo/data/part-0000
echo "== metactl ec set-policy /user/demo/data RS-6-3-1024k"
"$ctl" --cluster "$dir" ec set-policy /user/demo/data RS-6-3-1024k
head -c 50000000 /dev/urandom > "$dir/sample.bin"
echo "== metactl fs put sample.bin (50 MB) /user/demo/data/sample.bin   (RS-6-3, inherited)"
"$ctl" --cluster "$dir" fs put "$dir/sample.bin" /user/demo/data/sample.bin
echo "== metactl fs put sample.bin /user/demo/logs/sample.bin   (REPLICATED-3, the default)"
"$ctl" --cluster "$dir" fs put "$dir/sample.bin" /user/demo/logs/sample.bin
echo "== metactl fs get /user/demo/data/sample.bin; cmp with the original"
"$ctl" --cluster "$dir" fs get /user/demo/data/sample.bin "$dir/sample.back"
cmp "$dir/sample.bin" "$dir/sample.back" && echo "identical"
"$ctl" --cluster "$dir" fs cat /user/demo/logs/sample.bin | cmp - "$dir/sample.bin" && echo "identical (fs cat)"
echo "== metactl fs ls /user/demo"
"$ctl" --cluster "$dir" fs ls /user/demo
echo "== metactl fsck /user/demo"
"$ctl" --cluster "$dir" fsck /user/demo
echo "== metactl ec report"
"$ctl" --cluster "$dir" ec report
echo "== metactl fs stat /user/demo/data/part-0000"
"$ctl" --cluster "$dir" fs stat /user/demo/data/part-0000
echo "== metactl --read-mode observer --auto-msync always fs ls /user/demo/data   (read on the observer)"
"$ctl" --cluster "$dir" --read-mode observer --auto-msync always fs ls /user/demo/data
echo
echo "The cluster keeps running. Try:  $ctl --cluster $dir fs ls /user/demo"
echo "Stop it with:                     $ctl local down --dir $dir"
