#!/usr/bin/env bash
# Rebuilding one lost blockserver (issue 6), same machine, same data, three runs:
#   rack-aware      targets and sources near each other, each rack's cells combined there
#   random          random sources, every cell read on its own (HDFS's way)
#   rack-aware + budget  --rack-pair r1:r2=$BUDGET_MBPS, an r2 server lost
# Each: 3 metaservers, 12 blockservers in 3 racks, $SIZE of RS-6-3-1024k written by loadgen
# (one server then holds about $SIZE/8), one blockserver SIGKILLed, time until fsck is healthy,
# and the bytes read for reconstruction per rack pair from every blockserver's /metrics.
#   bench/rebuild.sh            (SIZE=8GiB BUDGET_MBPS=8 by default)
SIZE=${SIZE:-8GiB}
BUDGET_MBPS=${BUDGET_MBPS:-8}
. "$(dirname "$0")/peers.sh"

measure() {  # DIR VICTIM_RACK -> one JSON line
  python3 - "$bin/metactl" "$1" "$2" <<'PY'
import json, subprocess, sys, time, tomllib, urllib.request
ctl, d, rack = sys.argv[1:4]
cluster = json.load(open(f"{d}/cluster.json"))
def ctl_json(*args):
    return json.loads(subprocess.run([ctl, "--cluster", d, *args], check=True, capture_output=True).stdout)
def counters():
    out = {}
    for b in cluster["block"]:
        try:
            addr = tomllib.load(open(f"{d}/block-{b['id']}/blockserver.toml", "rb"))["metrics-addr"]
            text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
        except Exception:
            continue
        for line in text.splitlines():
            if line.startswith("raftfs_block_reconstruction_read_bytes_total{"):
                src = line.split('from_rack="')[1].split('"')[0]
                out[(src, b["rack"])] = out.get((src, b["rack"]), 0) + float(line.rsplit(" ", 1)[1])
    return out
victim = next(b for b in cluster["block"] if b["rack"] == rack)
held = sum(1 for _ in __import__("pathlib").Path(victim["data_dir"]).rglob("blk_*") if not _.name.endswith(".crc"))
held_bytes = sum(p.stat().st_size for p in __import__("pathlib").Path(victim["data_dir"]).rglob("blk_*") if not p.name.endswith(".crc"))
before = counters()
subprocess.run(["kill", "-9", str(victim["pid"])], check=True)
t0 = time.time()
samples = []
while True:
    f = ctl_json("fsck", "--json")
    c = counters()
    samples.append((time.time(), c))
    if f["live_blockservers"] == len(cluster["block"]) - 1 and f["degraded"] == 0 and f["missing"] == 0:
        break
    time.sleep(0.5)
t1 = time.time()
after = counters()
pairs = {f"{a}->{b}": after.get((a, b), 0) - before.get((a, b), 0) for (a, b) in after}
cross = sum(v for k, v in pairs.items() if k.split("->")[0] != k.split("->")[1])
# The busiest second-scale window of r1->r2 bytes (for budget adherence).
def r12(c): return c.get(("r1", "r2"), 0)
start = next((t for t, c in samples if r12(c) > r12(before)), t0)
last = max((t for t, c in samples if r12(c) == r12(after)), default=t1)
first_full = next((t for t, c in samples if r12(c) == r12(after)), t1)
print(json.dumps({"victim": victim["id"], "victim_rack": rack, "blocks_lost": held,
                  "bytes_lost": held_bytes, "seconds_to_healthy": t1 - t0,
                  "pairs": pairs, "cross_rack_bytes": cross,
                  "r1_r2_bytes": r12(after) - r12(before),
                  "r1_r2_seconds": max(first_full - start, 1e-3)}))
PY
}

run_one() {  # NAME EXTRA_LOCAL_UP_FLAGS VICTIM_RACK [THROTTLE...]
  local name=$1 flags=$2 rack=$3; shift 3
  local d="$work/$name"
  # shellcheck disable=SC2086
  "$bin/metactl" local up --dir "$d" --voters 3 --observers 0 --blockservers 12 --racks 3 \
    --dead-after-secs 3 $flags --detach >/dev/null
  if [ $# -gt 0 ]; then "$bin/metactl" --cluster "$d" reconstruction throttle "$@"; fi
  run data --op write --policy RS-6-3-1024k --size "$SIZE" --clients 4 --cluster "$d" >/dev/null
  echo "== $name: killing a blockserver of rack $rack" >&2
  measure "$d" "$rack"
  "$bin/metactl" local down --dir "$d" >/dev/null
  rm -rf "$d"
}

aware=$(run_one rack-aware "" r1)
random=$(run_one random "--rack-blind-reconstruction" r1)
budget=$(run_one budget "" r2 --rack-pair "r1:r2=$BUDGET_MBPS")

python3 - "$aware" "$random" "$budget" "$BUDGET_MBPS" <<'PY'
import json, sys
aware, random, budget = (json.loads(a) for a in sys.argv[1:4])
mbps = float(sys.argv[4])
print(f"\n{'run':<26}{'lost':>10}{'to healthy s':>14}{'cross-rack MB':>15}  bytes per rack pair (MB)")
for name, r in (("rack-aware", aware), ("random", random), (f"rack-aware, r1:r2={mbps:g}MB/s", budget)):
    pairs = ", ".join(f"{k} {v/1e6:.0f}" for k, v in sorted(r["pairs"].items()) if v)
    print(f"{name:<26}{r['bytes_lost']/2**30:>8.2f}Gi{r['seconds_to_healthy']:>14.1f}{r['cross_rack_bytes']/1e6:>15.0f}  {pairs}")
print(f"\ncross-rack bytes, rack-aware / random = {aware['cross_rack_bytes'] / max(random['cross_rack_bytes'], 1):.2f} (goal <= 0.60)")
rate = budget["r1_r2_bytes"] / budget["r1_r2_seconds"] / 1e6
print(f"r1 -> r2 under a {mbps:g} MB/s budget: {rate:.2f} MB/s over {budget['r1_r2_seconds']:.1f} s = {rate / mbps:.3f} of the budget (goal: within 5%)")
PY
