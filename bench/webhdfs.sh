#!/usr/bin/env bash
# The WebHDFS gateway beside metactl, same cluster, same run (issue 22): a SIZE file written
# and read through the gateway (curl: two-step CREATE, OPEN) and through metactl (fs put,
# fs cat), for REPLICATED-3 and RS-6-3-1024k; and a directory of ENTRIES files listed by
# LISTSTATUS and by `metactl fs ls`. Both sides' copies are checked by checksum. Prints
# MB/s (entries/s), the gateway's ratio to metactl, and the gateway's CPU per MiB.
#   bench/webhdfs.sh              (SIZE_MIB=1024 ENTRIES=100000 by default)
#   TLS=1 bench/webhdfs.sh        a --tls cluster (every port mutual TLS), the gateway serving
#                                 swebhdfs (HTTPS, curl with the superuser's certificate) and
#                                 acting for it under a proxy rule; metactl over TLS too
SIZE_MIB=${SIZE_MIB:-1024}
ENTRIES=${ENTRIES:-100000}
. "$(dirname "$0")/peers.sh"

tls=()
[[ -n "${TLS:-}" ]] && tls=(--tls --proxy-user gateway)
"$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 0 \
  --blockservers 9 --racks 3 "${tls[@]}" --detach >/dev/null
m=("$bin/metactl" --cluster "$work/raftfs")
gw=("${m[@]}")
curl=(curl)
scheme=http
if [[ -n "${TLS:-}" ]]; then
  t=$work/raftfs/tls
  "$bin/metactl" local cert --dir "$work/raftfs" --user gateway --host 127.0.0.1 >/dev/null
  me=$(id -un)
  gw+=(--ca "$t/ca.pem" --cert "$t/users/gateway.pem" --key "$t/users/gateway.key")
  curl+=(--cacert "$t/ca.pem" --cert "$t/users/$me.pem" --key "$t/users/$me.key")
  scheme=https
fi
"${gw[@]}" gateway --listen 127.0.0.1:0 ${TLS:+--https} > "$work/gateway.addr" \
  2> "$work/gateway.log" &
gw_pid=$!
trap 'kill $gw_pid 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 50); do [ -s "$work/gateway.addr" ] && break; sleep 0.1; done
url="$scheme://$(head -1 "$work/gateway.addr")/webhdfs/v1"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$work/src.bin"

timed_pid=$gw_pid  # timed (peers.sh) counts the gateway's CPU
checksum() { "${m[@]}" fs checksum "$1" | cut -f3; }

for policy in REPLICATED-3 RS-6-3-1024k; do
  d=/bench/$policy
  "${m[@]}" fs mkdir -p "$d" >/dev/null
  "${m[@]}" ec set-policy "$d" "$policy" >/dev/null
  echo "== $policy: $SIZE_MIB MiB" >&2
  timed "$policy metactl-put" "${m[@]}" fs put "$work/src.bin" "$d/by-metactl"
  timed "$policy gateway-create" "${curl[@]}" -sSf -L -X PUT -T "$work/src.bin" \
    "$url$d/by-gateway?op=CREATE&user.name=root"
  timed "$policy metactl-cat" sh -c "\"\$@\" fs cat $d/by-gateway > /dev/null" _ "${m[@]}"
  timed "$policy gateway-open" "${curl[@]}" -sSf -L -o /dev/null \
    "$url$d/by-metactl?op=OPEN&user.name=root"
  a=$(checksum "$d/by-metactl"); b=$(checksum "$d/by-gateway")
  [ "$a" = "$b" ] || { echo "checksums differ: $a $b" >&2; exit 1; }
done

echo "== $ENTRIES entries" >&2
run meta --op create --ops "$ENTRIES" --files-per-dir "$ENTRIES" --clients 64 \
  --roots /list --cluster "$work/raftfs" > /dev/null
dir=$("${m[@]}" fs ls /list | tail -n +2 | awk '{print $NF}' | head -1)
dir=$dir/d0
timed "list metactl-ls" sh -c "\"\$@\" fs ls $dir > $work/ls.txt" _ "${m[@]}"
timed "list gateway-liststatus" "${curl[@]}" -sSf -o "$work/ls.json" "$url$dir?op=LISTSTATUS&user.name=root"

python3 - "$work/times" "$SIZE_MIB" "$ENTRIES" "$work/ls.txt" "$work/ls.json" <<'PY'
import json, sys
times, size, entries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = {}
for line in open(times):
    *name, wall, cpu = line.split()
    t[" ".join(name)] = (float(wall), float(cpu))
listed = len(json.load(open(sys.argv[5]))["FileStatuses"]["FileStatus"])
lines = sum(1 for _ in open(sys.argv[4])) - 1  # after "Found N items"
assert listed == entries, (listed, entries)
print(f"\n{'run':<38}{'metactl':>10}{'gateway':>10}{'ratio':>8}{'gateway CPU':>14}")
for policy in ("REPLICATED-3", "RS-6-3-1024k"):
    for what, mine, theirs in (("write", "metactl-put", "gateway-create"),
                               ("read", "metactl-cat", "gateway-open")):
        mw, _ = t[f"{policy} {mine}"]
        gw, gc = t[f"{policy} {theirs}"]
        print(f"{policy + ' ' + what + ', MB/s':<38}{size*1.048576/mw:>10.1f}"
              f"{size*1.048576/gw:>10.1f}{mw/gw:>8.2f}{gc/size*1000:>10.2f} ms/MiB")
mw, _ = t["list metactl-ls"]
gw, gc = t["list gateway-liststatus"]
print(f"{f'list {entries} entries, entries/s':<38}{lines/mw:>10.0f}{listed/gw:>10.0f}"
      f"{mw/gw:>8.2f}{gc/listed*1e6:>10.1f} us/entry")
PY
