#!/usr/bin/env bash
# Federation through a router (DESIGN §10), same machine, same run, same load generator:
#   two nameservices of 3 voters each and one router; /a -> ns1:/a and /b -> ns2:/b.
#   - creates/s through the router into one nameservice (--roots /a) and into two (--roots
#     /a,/b: every client alternates), with the CPU per create of the router and of every
#     member of both nameservices;
#   - the router's added latency: the same creates and stats directly on ns1's active and
#     through the router, at 1 client (p50/p99 of each) and at $CLIENTS.
#   bench/router.sh            (CLIENTS=64 OPS=20000 by default)
OPS=${OPS:-20000}
. "$(dirname "$0")/peers.sh"

"$bin/metactl" local up --dir "$work/raftfs" --nameservices 2 --voters 3 --observers 0 \
  --blockservers 0 --routers 1 --detach >/dev/null
"$bin/metactl" --cluster "$work/raftfs" mount add /a ns1:/a
"$bin/metactl" --cluster "$work/raftfs" mount add /b ns2:/b
router_pid() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["routers"][0]["pid"])' "$work/raftfs/cluster.json"
}
pids="$(router_pid),$(raftfs_pids "$work/raftfs/ns1"),$(raftfs_pids "$work/raftfs/ns2")"

one=$(run_cpu "$pids" meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs" --roots /a)
two=$(run_cpu "$pids" meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs" --roots /a,/b)
direct=$(run_cpu "$pids" meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs/ns1" --roots /a)
direct1=$(run meta --op create --clients 1 --ops 2000 --cluster "$work/raftfs/ns1" --roots /a)
routed1=$(run meta --op create --clients 1 --ops 2000 --cluster "$work/raftfs" --roots /a)
sdirect1=$(run meta --op stat --clients 1 --ops 5000 --cluster "$work/raftfs/ns1" --roots /a)
srouted1=$(run meta --op stat --clients 1 --ops 5000 --cluster "$work/raftfs" --roots /a)
sdirect=$(run_cpu "$pids" meta --op stat --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs/ns1" --roots /a)
srouted=$(run_cpu "$pids" meta --op stat --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs" --roots /a)

for r in "$one" "$two" "$direct" "$direct1" "$routed1" "$sdirect1" "$srouted1" "$sdirect" "$srouted"; do echo "$r"; done
python3 - "$one" "$two" "$direct" "$direct1" "$routed1" "$sdirect1" "$srouted1" "$sdirect" "$srouted" <<'PY'
import json, sys
one, two, direct, direct1, routed1, sdirect1, srouted1, sdirect, srouted = (json.loads(a) for a in sys.argv[1:10])
print(f"\n{'run':<40}{'ops/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  CPU us/op: router, ns1 x3, ns2 x3, loadgen")
for name, r in ((f"create, router, 1 ns, {one['clients']} cl", one), (f"create, router, 2 ns, {two['clients']} cl", two),
                (f"create, ns1 direct, {direct['clients']} cl", direct),
                ("create, ns1 direct, 1 client", direct1), ("create, router, 1 client", routed1),
                ("stat, ns1 direct, 1 client", sdirect1), ("stat, router, 1 client", srouted1),
                (f"stat, ns1 direct, {sdirect['clients']} cl", sdirect), (f"stat, router, {srouted['clients']} cl", srouted)):
    cpu = r.get("server_cpu_us_per_op")
    cpu = f"  {cpu} {r['client_cpu_us_per_op']}" if cpu else ""
    print(f"{name:<40}{r['ops_per_sec']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}{cpu}")
print(f"\ncreates/s, two nameservices / one (through the router) = {two['ops_per_sec'] / one['ops_per_sec']:.2f}")
print(f"creates/s, router / direct                               = {one['ops_per_sec'] / direct['ops_per_sec']:.2f}")
for what, d, r in (("create", direct1, routed1), ("stat", sdirect1, srouted1)):
    print(f"router's added latency, {what}, 1 client: p50 +{r['p50_ms'] - d['p50_ms']:.2f} ms, p99 +{r['p99_ms'] - d['p99_ms']:.2f} ms")
def cpu_sum(r):
    return sum(r["server_cpu_us_per_op"]) + r["client_cpu_us_per_op"]
print(f"CPU per create, all processes: 1 ns {cpu_sum(one):.0f} us, 2 ns {cpu_sum(two):.0f} us, direct {cpu_sum(direct):.0f} us"
      f" -> at most {2e6 / cpu_sum(one):.0f} / {2e6 / cpu_sum(two):.0f} / {2e6 / cpu_sum(direct):.0f} creates/s on 2 cores")
PY
