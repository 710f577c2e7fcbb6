#!/usr/bin/env bash
# The operator pages at a fleet's size (issue 24: no page takes more than 200 ms to render
# with 1,000 blockservers registered): a local cluster of 3 voters, 1 observer and 3 real
# blockservers in 3 racks; a few files of two policies (the health census has something to
# count); then `loadgen blockservers` registers SERVERS synthetic blockservers with every
# member (register, full report of BLOCKS blocks, a heartbeat a second each). Once the
# active counts them all live, every page, HTML and ?format=json, is fetched GETS times in a
# row (one curl, one kept-alive connection) on the active and on a standby. Per page: the
# bytes, curl's time_total (median, p99, max) and the member's CPU per render: its utime +
# stime (/proc/PID/stat) over the batch, less what the heartbeats cost meanwhile (its CPU
# rate with no page asked for, measured first), divided by GETS. Figures are printed, never
# judged: the exit status is non-zero only when something failed (a page not 200).
#   bench/ui.sh                  (SERVERS=1000 RACKS=40 BLOCKS=100 GETS=100 by default)
#   RAFTFS_BIN=target/release bench/ui.sh   (binaries built already)
SERVERS=${SERVERS:-1000}
RACKS=${RACKS:-40}
BLOCKS=${BLOCKS:-100}
GETS=${GETS:-100}
REAL=3
. "$(dirname "$0")/peers.sh"

dir="$work/raftfs"
"$bin/metactl" local up --dir "$dir" --voters 3 --observers 1 \
  --blockservers "$REAL" --racks 3 --detach >/dev/null
fleet=""
stop_fleet() {
  if [ -n "$fleet" ]; then
    kill "$fleet" 2>/dev/null || true
    wait "$fleet" 2>/dev/null || true
    fleet=""
  fi
}
trap 'stop_fleet; cleanup' EXIT

# Written before the fleet registers: placement would otherwise pick synthetic servers,
# which store nothing.
echo "\$ metactl fs put: 10 files REPLICATED-3, 10 files XOR-2-1-1024k (1 MiB each)" >&2
head -c $((1 << 20)) /dev/urandom > "$work/file"
"$bin/metactl" --cluster "$dir" fs mkdir -p /ui-bench/rep
"$bin/metactl" --cluster "$dir" fs mkdir -p /ui-bench/xor
for i in $(seq 1 10); do
  "$bin/metactl" --cluster "$dir" fs put --policy REPLICATED-3 "$work/file" "/ui-bench/rep/f$i"
  "$bin/metactl" --cluster "$dir" fs put --policy XOR-2-1-1024k "$work/file" "/ui-bench/xor/f$i"
done

echo "\$ loadgen blockservers --cluster $dir --servers $SERVERS --racks $RACKS --blocks-per-server $BLOCKS" >&2
"$bin/loadgen" blockservers --cluster "$dir" --servers "$SERVERS" --racks "$RACKS" \
  --blocks-per-server "$BLOCKS" >"$work/fleet.out" 2>"$work/fleet.log" &
fleet=$!

# "ROLE ID PID METRICS_ADDR LIVE" of every member, from its own /ui (LIVE: the active's
# fleet.live, -1 elsewhere; ROLE "down" when it does not answer).
members() {
  python3 - "$dir/cluster.json" <<'PY'
import json, sys, urllib.request
for m in json.load(open(sys.argv[1]))["meta"]:
    try:
        url = f"http://{m['metrics_addr']}/ui?format=json"
        page = json.load(urllib.request.urlopen(url, timeout=10))
        role, live = page["answered"]["role"], (page.get("fleet") or {}).get("live", -1)
    except Exception:
        role, live = "down", -1
    print(role, m["id"], m["pid"], m["metrics_addr"], live)
PY
}

want=$((SERVERS + REAL))
members_n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["meta"]))' "$dir/cluster.json")
deadline=$(($(date +%s) + 180))
while :; do
  if ! kill -0 "$fleet" 2>/dev/null; then
    echo "loadgen blockservers exited:" >&2
    cat "$work/fleet.log" >&2
    exit 1
  fi
  live=$(members | awk '$1 == "active" {print $5}')
  # And every member took every synthetic server's full report (loadgen's progress line).
  reported=$(grep -o 'reported on each metaserver: [0-9/ ]*' "$work/fleet.log" | tail -n 1 |
    grep -o "$SERVERS/$SERVERS" | wc -l || true)
  [ -n "$live" ] && [ "$live" -ge "$want" ] && [ "$reported" -eq "$members_n" ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "after 180 s the active counts ${live:-no} live blockservers (want $want);" \
      "$reported of $members_n members took every full report" >&2
    tail -n 5 "$work/fleet.log" >&2
    exit 1
  fi
  sleep 2
done
echo "the active counts $live live blockservers ($SERVERS synthetic, $REAL real);" \
  "every member took every full report" >&2

view=$(members)
active=$(awk '$1 == "active" {print $2, $3, $4; exit}' <<<"$view")
standby=$(awk '$1 == "standby" {print $2, $3, $4; exit}' <<<"$view")
if [ -z "$active" ] || [ -z "$standby" ]; then
  echo "no active or no standby among the members:" >&2
  echo "$view" >&2
  exit 1
fi

status=0
python3 - "$GETS" "active $active" "standby $standby" <<'PY' || status=$?
import math, os, subprocess, sys, time
gets = int(sys.argv[1])
members = [a.split() for a in sys.argv[2:]]  # role id pid addr
pages = ["/ui", "/ui/blockservers", "/ui/health", "/ui/reconstruction", "/ui/workers"]
tick = os.sysconf("SC_CLK_TCK")

def cpu(pid):  # utime + stime, seconds (fields 14 and 15 of /proc/PID/stat)
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def batch(url, n):  # n GETs of url on one connection: [(seconds, bytes, status)]
    args = ["curl", "-s", "-w", "%{time_total} %{size_download} %{http_code}\\n"]
    for _ in range(n):
        args += ["-o", "/dev/null", url]
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
    return [(float(t), int(b), int(c)) for t, b, c in (l.split() for l in out.splitlines())]

def rank(sorted_ms, q):  # nearest rank
    return sorted_ms[max(0, min(len(sorted_ms) - 1, math.ceil(len(sorted_ms) * q) - 1))]

failed = []
print(f"\n{'member':<18}{'page':<34}{'bytes':>9}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}{'cpu ms/render':>15}")
for role, mid, pid, addr in members:
    # The member's CPU rate with no page asked for: the heartbeats of the whole fleet.
    c0, t0 = cpu(pid), time.monotonic()
    time.sleep(5)
    idle = (cpu(pid) - c0) / (time.monotonic() - t0)
    who = f"{role} (id {mid})"
    print(f"{who:<18}{'(no page: heartbeats only)':<34}{'':>9}{'':>11}{'':>9}{'':>9}"
          f"{'%.2f cores' % idle:>15}")
    for page in pages:
        for fmt in ("", "?format=json"):
            url = f"http://{addr}{page}{fmt}"
            batch(url, 1)  # warm-up, unmeasured
            c0, t0 = cpu(pid), time.monotonic()
            got = batch(url, gets)
            wall, used = time.monotonic() - t0, cpu(pid) - c0
            bad = [c for _, _, c in got if c != 200]
            if bad or len(got) != gets:
                failed.append(f"{role} {page}{fmt}: {len(got)} answers, statuses {sorted(set(bad))}")
            ms = sorted(t * 1000 for t, _, _ in got) or [float("nan")]
            per = max(0.0, used - idle * wall) / max(len(got), 1) * 1000
            print(f"{who:<18}{page + fmt:<34}{got[-1][1] if got else 0:>9}{rank(ms, 0.5):>11.2f}"
                  f"{rank(ms, 0.99):>9.2f}{ms[-1]:>9.2f}{per:>15.2f}")
print(f"\n{gets} GETs per page on one connection; time: curl's time_total; cpu: the member's "
      f"utime+stime over the batch less its heartbeats-only rate, per GET (/proc, {1000 / tick:.0f} ms ticks)")
for f in failed:
    print("error:", f, file=sys.stderr)
sys.exit(1 if failed else 0)
PY

stop_fleet
echo
echo "the synthetic fleet's heartbeats (every member) during the run:"
cat "$work/fleet.out"
tail -n 2 "$work/fleet.log"
exit "$status"
