# Sourced by the bench scripts: builds the release binaries, makes a scratch directory that is
# removed on exit together with whatever runs in it, and defines
#   $bin          the release binaries (metactl, loadgen; $RAFTFS_BIN if set, not built)
#   $work         the scratch directory (raftfs cluster in $work/raftfs, etcd in $work/etcd)
#   $PEER         the etcd peer script (../shared/bench/etcd-peer.sh, or $ETCD_PEER)
#   run ARGS...   loadgen --json ARGS, echoing the command on stderr
#   run_cpu PIDS ARGS...   as run, and adds to the report the CPU time per operation of the
#                 servers in PIDS (comma-separated; user + system, from /proc) and of loadgen
#                 itself: "server_cpu_us_per_op" (one figure per server) and
#                 "client_cpu_us_per_op". On a 2-core machine that runs every member and the
#                 load generator, CPU per operation bounds the rate: 2 cores / CPU per op.
#   raftfs_pids DIR, etcd_pids DIR   the server PIDS of the raftfs cluster or etcd in DIR
#   timed NAME CMD...   CMD's wall seconds and process $timed_pid's CPU seconds meanwhile,
#                 appended to $work/times (proc_cpu PID: a process's CPU seconds)
#   scrape DIR PREFIX   one JSON object {node id: {metric: value}} of every metaserver's
#                 /metrics lines that start with PREFIX
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-deps.sh
. scripts/env.sh
CLIENTS=${CLIENTS:-64}
PEER=${ETCD_PEER:-../shared/bench/etcd-peer.sh}
[ -x "$PEER" ] || PEER="bash $PEER"

# RAFTFS_BIN=DIR: binaries built elsewhere (another commit, for a before/after run).
if [ -n "${RAFTFS_BIN:-}" ]; then
  bin=$RAFTFS_BIN
else
  cargo build --release --bin metactl --bin loadgen
  bin="$CARGO_TARGET_DIR/release"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/raftfs-bench.XXXXXX")
cleanup() {
  "$bin/metactl" local down --dir "$work/raftfs" >/dev/null 2>&1 || true
  $PEER down "$work/etcd" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

run() { echo "\$ loadgen --json $*" >&2; "$bin/loadgen" --json "$@"; }

run_cpu() {
  local pids=$1; shift
  echo "\$ loadgen --json $*   (CPU of servers $pids)" >&2
  python3 - "$pids" "$bin/loadgen" --json "$@" <<'PY'
import json, os, resource, subprocess, sys
pids = [int(p) for p in sys.argv[1].split(",")]
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):  # utime + stime of a live process, seconds (fields 14 and 15 of /proc/PID/stat)
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick
before = [cpu(p) for p in pids]
out = subprocess.run(sys.argv[2:], check=True, stdout=subprocess.PIPE, text=True).stdout
after = [cpu(p) for p in pids]
child = resource.getrusage(resource.RUSAGE_CHILDREN)
report = json.loads(out)
ops = max(report["ops"], 1)
report["server_cpu_us_per_op"] = [round(1e6 * (b - a) / ops, 1) for a, b in zip(before, after)]
report["client_cpu_us_per_op"] = round(1e6 * (child.ru_utime + child.ru_stime) / ops, 1)
print(json.dumps(report))
PY
}

raftfs_pids() {
  python3 -c 'import json, sys; print(",".join(str(m["pid"]) for m in json.load(open(sys.argv[1]))["meta"]))' "$1/cluster.json"
}

etcd_pids() { cat "$1"/e*.pid | paste -sd, -; }

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

proc_cpu() { # utime + stime of process $1, seconds
  python3 -c "import os,sys; f=open(f'/proc/{sys.argv[1]}/stat').read().rsplit(')',1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf('SC_CLK_TCK'))" "$1"
}
# timed NAME CMD...: appends "NAME WALL CPU" to $work/times: CMD's wall seconds and the CPU
# seconds process $timed_pid (the gateway, the mount) spent meanwhile.
timed() {
  local name=$1; shift
  local c0 t0 t1 c1
  c0=$(proc_cpu "$timed_pid"); t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N); c1=$(proc_cpu "$timed_pid")
  echo "$name $(awk "BEGIN{print $t1 - $t0}") $(awk "BEGIN{print $c1 - $c0}")" >> "$work/times"
}
