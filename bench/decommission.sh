#!/usr/bin/env bash
# Decommissioning blockservers under reconstruction budgets (issue 20), two runs:
#   three  12 blockservers in 3 racks; one server of each rack decommissioned at once, under a
#          per-server budget of $NODE_MBPS (bytes read + written by reconstruction)
#   rack   16 blockservers in 4 racks; the whole rack r4 (4 servers) decommissioned, under a
#          budget of $BUDGET_MBPS on each rack pair r4 -> r1, r2, r3
# Each: 3 metaservers, $SIZE of RS-6-3-1024k and $REP_SIZE of REPLICATED-3 written by loadgen;
# `metactl blockserver decommission`; until every one shows decommissioned, fsck every 0.5 s
# (it must stay healthy) and the bytes moved per rack pair and per server sampled from every
# blockserver's /metrics (the rebuild benchmark's method: the rate from a pair's first byte
# to its last, and the busiest 5 s window); then the rack rules checked from the block files
# on disk (every internal block off the drained servers; no rack over its share of a group),
# the drained servers killed, and every byte read back and checked by loadgen.
#   bench/decommission.sh        (SIZE=2GiB REP_SIZE=256MiB NODE_MBPS=20 BUDGET_MBPS=8)
SIZE=${SIZE:-2GiB}
REP_SIZE=${REP_SIZE:-256MiB}
NODE_MBPS=${NODE_MBPS:-20}
BUDGET_MBPS=${BUDGET_MBPS:-8}
. "$(dirname "$0")/peers.sh"

drain() {  # DIR IDS(comma-separated) -> one JSON line
  python3 - "$bin/metactl" "$1" "$2" <<'PY'
import collections, json, math, pathlib, re, subprocess, sys, time, tomllib, urllib.request
ctl, d, ids = sys.argv[1], sys.argv[2], [int(i) for i in sys.argv[3].split(",")]
cluster = json.load(open(f"{d}/cluster.json"))
rack_of = {b["id"]: b["rack"] for b in cluster["block"]}
def ctl_json(*args):
    return json.loads(subprocess.run([ctl, "--cluster", d, *args], check=True, capture_output=True).stdout)
def counters():
    pairs, servers = collections.Counter(), collections.Counter()
    for b in cluster["block"]:
        try:
            addr = tomllib.load(open(f"{d}/block-{b['id']}/blockserver.toml", "rb"))["metrics-addr"]
            text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
        except Exception:
            continue
        for line in text.splitlines():
            v = float(line.rsplit(" ", 1)[1]) if line.startswith("raftfs_block_reconstruction_") else 0
            if line.startswith("raftfs_block_reconstruction_read_bytes_total{"):
                src = line.split('from_rack="')[1].split('"')[0]
                pairs[f"{src}->{b['rack']}"] += v
                # A drain copies: every byte read is written once, and the per-server budget
                # counts both. The written counter moves once per task (at its end), so the
                # reads, counted as they happen, twice, are the server's budgeted bytes.
                servers[b["id"]] += 2 * v
    return pairs, servers
before_pairs, before_servers = counters()
held = sum(s["blocks"] for s in ctl_json("blockserver", "list", "--json")["blockservers"] if s["id"] in ids)
subprocess.run([ctl, "--cluster", d, "blockserver", "decommission", *map(str, ids)], check=True)
t0 = time.time()
samples, looks, unhealthy = [], 0, []
while True:
    f = ctl_json("fsck", "--json")
    looks += 1
    if f["degraded"] or f["missing"]:
        unhealthy.append({"t": round(time.time() - t0, 1), "degraded": f["degraded"], "missing": f["missing"]})
    samples.append((time.time(), *counters()))
    states = {s["id"]: s["admin"]["state"] for s in ctl_json("blockserver", "list", "--json")["blockservers"]}
    if all(states[i] == "decommissioned" for i in ids):
        break
    time.sleep(0.5)
t1 = time.time()
tasks = ctl_json("reconstruction", "status", "--json")
def series(key, which):
    return [(t, (p if which == "pairs" else s).get(key, 0) - (before_pairs if which == "pairs" else before_servers).get(key, 0)) for t, p, s in samples]
def rates(points):
    """Bytes, the rate from the first byte to the last, and the busiest 5 s window."""
    total = points[-1][1]
    if total == 0:
        return total, 0.0, 0.0
    start = next(t for t, v in points if v > 0)
    end = next(t for t, v in points if v == total)
    # The first sample with bytes also counts the bytes moved since the previous one.
    prev = max((t for t, v in points if t < start), default=t0)
    avg = total / max(end - prev, 1e-3)
    peak = 0.0
    for i, (ta, va) in enumerate(points):
        for tb, vb in points[i + 1:]:
            if tb - ta >= 5:
                peak = max(peak, (vb - va) / (tb - ta))
                break
    return total, avg, peak
pairs = {k: rates(series(k, "pairs")) for k in samples[-1][1]}
servers = {k: rates(series(k, "servers")) for k in samples[-1][2]}
# Rack rules, from the block files: every internal block of a group off the drained servers,
# and no rack over its share (ceil(width / racks left)) of the group.
files = collections.defaultdict(lambda: collections.defaultdict(set))
for b in cluster["block"]:
    for p in pathlib.Path(b["data_dir"]).rglob("blk_*"):
        m = re.fullmatch(r"blk_([0-9a-f]+)_(\d+)", p.name)
        if m:
            files[int(m.group(1), 16)][int(m.group(2))].add(b["id"])
racks_left = len({r for i, r in rack_of.items() if i not in ids})
lost, over = 0, 0
for group, blocks in files.items():
    width = 9 if len(blocks) > 1 else 3  # RS-6-3, or a 3-replica block (index 0 only)
    staying = {i: {n for n in ns if n not in ids} for i, ns in blocks.items()}
    lost += sum(1 for ns in staying.values() if not ns)
    per_rack = collections.Counter(rack_of[n] for ns in staying.values() for n in ns)
    if max(per_rack.values(), default=0) > math.ceil(width / racks_left):
        over += 1
print(json.dumps({"drained": ids, "blocks_held": held, "seconds": t1 - t0, "fsck_looks": looks,
                  "fsck_unhealthy": unhealthy, "tasks_finished": tasks["tasks_finished"],
                  "tasks_failed": tasks["tasks_failed"], "groups": len(files),
                  "blocks_without_a_copy_left": lost, "groups_over_rack_share": over,
                  "pairs": {k: v for k, v in pairs.items() if v[0]},
                  "servers": {str(k): v for k, v in servers.items() if v[0]}}))
PY
}

run_one() {  # NAME BLOCKSERVERS RACKS IDS [THROTTLE...]
  local name=$1 n=$2 racks=$3 ids=$4; shift 4
  local d="$work/$name"
  "$bin/metactl" local up --dir "$d" --voters 3 --observers 0 --blockservers "$n" --racks "$racks" \
    --dead-after-secs 3 --detach >/dev/null
  "$bin/metactl" --cluster "$d" reconstruction throttle "$@"
  run data --op write --policy RS-6-3-1024k --size "$SIZE" --clients 4 --cluster "$d" >/dev/null
  run data --op write --policy REPLICATED-3 --size "$REP_SIZE" --clients 4 --cluster "$d" >/dev/null
  echo "== $name: decommissioning blockservers $ids" >&2
  local out; out=$(drain "$d" "$ids")
  for id in ${ids//,/ }; do
    kill -9 "$(python3 -c "import json,sys; print(next(b['pid'] for b in json.load(open('$d/cluster.json'))['block'] if b['id']==$id))")"
  done
  local read_ok=true
  run data --op read --policy RS-6-3-1024k --size "$SIZE" --clients 4 --cluster "$d" >/dev/null || read_ok=false
  run data --op read --policy REPLICATED-3 --size "$REP_SIZE" --clients 4 --cluster "$d" >/dev/null || read_ok=false
  echo "${out%\}}, \"read_back\": $read_ok}"
  "$bin/metactl" local down --dir "$d" >/dev/null
  rm -rf "$d"
}

# 12 servers in 3 racks round robin: 1, 2, 3 are one of each rack.
three=$(run_one three 12 3 1,2,3 --node "$NODE_MBPS")
# 16 servers in 4 racks round robin: r4 is 4, 8, 12, 16.
rack=$(run_one rack 16 4 4,8,12,16 --rack-pair "r4:r1=$BUDGET_MBPS" --rack-pair "r4:r2=$BUDGET_MBPS" --rack-pair "r4:r3=$BUDGET_MBPS")

python3 - "$three" "$rack" "$NODE_MBPS" "$BUDGET_MBPS" <<'PY'
import json, sys
three, rack = (json.loads(a) for a in sys.argv[1:3])
node, pair = float(sys.argv[3]), float(sys.argv[4])
print(f"\n{'run':<34}{'blocks':>8}{'drain s':>9}{'fsck looks':>11}{'unhealthy':>10}{'lost':>6}{'over share':>11}{'read back':>10}")
for name, r in ((f"3 of 12 servers, {node:g} MB/s each", three), (f"rack r4 (4 of 16), {pair:g} MB/s/pair", rack)):
    print(f"{name:<34}{r['blocks_held']:>8}{r['seconds']:>9.1f}{r['fsck_looks']:>11}{len(r['fsck_unhealthy']):>10}"
          f"{r['blocks_without_a_copy_left']:>6}{r['groups_over_rack_share']:>11}{str(r['read_back']):>10}")
print(f"\n3 of 12: per-server reconstruction bytes (read + written: twice the bytes read, a drain copies) against the {node:g} MB/s budget")
worst = max(three["servers"].items(), key=lambda kv: kv[1][2], default=None)
for sid, (b, avg, peak) in sorted(three["servers"].items(), key=lambda kv: int(kv[0])):
    print(f"  server {sid:>3}: {b/1e6:8.0f} MB, {avg/1e6:6.2f} MB/s first to last byte, busiest 5 s {peak/1e6:6.2f} MB/s = {peak/1e6/node:.3f} of the budget")
cross = sum(v[0] for k, v in three["pairs"].items() if k.split("->")[0] != k.split("->")[1])
print(f"  cross-rack bytes: {cross/1e6:.0f} MB of {sum(v[0] for v in three['pairs'].values())/1e6:.0f} MB read")
print(f"\nrack r4: bytes per rack pair against the {pair:g} MB/s budget")
for k, (b, avg, peak) in sorted(rack["pairs"].items()):
    print(f"  {k}: {b/1e6:8.0f} MB, {avg/1e6:6.2f} MB/s first to last byte = {avg/1e6/pair:.3f} of the budget; busiest 5 s {peak/1e6:6.2f} MB/s")
PY
