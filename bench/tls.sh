#!/usr/bin/env bash
# What TLS costs, raftfs beside etcd, same machine, same run, same load generator (issue 16):
#   loadgen meta --op create   on a 3-voter raftfs, plain, then with `local up --tls` (every
#                              port mutual TLS, the client authenticated by certificate)
#   loadgen etcd --op put      on a 3-member etcd, plain (../shared/bench/etcd-peer.sh), then
#                              with its own TLS: client and peer traffic, client certificates
#                              required (--client-cert-auth, --peer-client-cert-auth), the
#                              certificates from the raftfs cluster's CA
#   loadgen data --op write    RS-6-3-1024k files on 3 metaservers and 9 blockservers, plain
#                              and TLS, in the order plain, TLS, TLS, plain (each a fresh
#                              cluster on disks flushed of the run before)
# with the CPU per operation (or per MB) of every server and of loadgen, and the ratios: TLS /
# plain for each, raftfs's beside etcd's. Goal: TLS costs raftfs no more than it costs etcd.
#   bench/tls.sh            (CLIENTS=64 OPS=100000 SIZE=1GiB DATA_CLIENTS=4 by default)
OPS=${OPS:-100000}
SIZE=${SIZE:-1GiB}
DATA_CLIENTS=${DATA_CLIENTS:-4}
. "$(dirname "$0")/peers.sh"

down() { "$bin/metactl" local down --dir "$1" >/dev/null; }
# Stops the cluster in DIR and removes it, its written data flushed: a run that follows must
# not pay for the previous run's writeback (the second of two 1 GiB runs was 40% slower for
# that alone).
gone() { down "$1"; rm -rf "$1"; sync; }
# Every server of the cluster in DIR, metaservers and blockservers: the data path's CPU.
all_pids() {
  python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); print(",".join(str(m["pid"]) for m in c["meta"] + c["block"]))' "$1/cluster.json"
}

# raftfs metadata writes, plain then TLS.
"$bin/metactl" local up --dir "$work/plain" --voters 3 --observers 0 --detach >/dev/null
create_plain=$(run_cpu "$(raftfs_pids "$work/plain")" meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/plain")
gone "$work/plain"
"$bin/metactl" local up --dir "$work/tls" --voters 3 --observers 0 --tls --detach >/dev/null
create_tls=$(run_cpu "$(raftfs_pids "$work/tls")" meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/tls")
down "$work/tls"

# etcd puts, plain then TLS (its certificates from the raftfs cluster's CA: loopback names,
# server and client use).
endpoints=$($PEER up "$work/etcd")
put_plain=$(run_cpu "$(etcd_pids "$work/etcd")" etcd --op put --clients "$CLIENTS" --ops "$OPS" --endpoints "$endpoints")
$PEER down "$work/etcd" >/dev/null
tls="$work/tls/tls"
"$bin/metactl" local cert --dir "$work/tls" --user etcd-client >/dev/null
base=24790; cluster=""; endpoints=""
for i in 1 2 3; do
  cluster+="${cluster:+,}e$i=https://127.0.0.1:$((base + 10*i + 1))"
  endpoints+="${endpoints:+,}127.0.0.1:$((base + 10*i))"
done
mkdir -p "$work/etcd-tls"
for i in 1 2 3; do
  cport=$((base + 10*i)); pport=$((base + 10*i + 1))
  etcd --name "e$i" --data-dir "$work/etcd-tls/e$i" \
    --listen-client-urls "https://127.0.0.1:$cport" --advertise-client-urls "https://127.0.0.1:$cport" \
    --listen-peer-urls "https://127.0.0.1:$pport" --initial-advertise-peer-urls "https://127.0.0.1:$pport" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token raftfs-tls-peer \
    --cert-file "$tls/member-$i.pem" --key-file "$tls/member-$i.key" \
    --trusted-ca-file "$tls/ca.pem" --client-cert-auth \
    --peer-cert-file "$tls/member-$i.pem" --peer-key-file "$tls/member-$i.key" \
    --peer-trusted-ca-file "$tls/ca.pem" --peer-client-cert-auth \
    --quota-backend-bytes 8589934592 --log-level error >"$work/etcd-tls/e$i.log" 2>&1 &
  echo $! > "$work/etcd-tls/e$i.pid"
done
etcd_tls=(--etcd-ca "$tls/ca.pem" --etcd-cert "$tls/users/etcd-client.pem" --etcd-key "$tls/users/etcd-client.key")
for _ in $(seq 1 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$endpoints" --cacert "$tls/ca.pem" \
    --cert "$tls/users/etcd-client.pem" --key "$tls/users/etcd-client.key" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
put_tls=$(run_cpu "$(etcd_pids "$work/etcd-tls")" etcd --op put --clients "$CLIENTS" --ops "$OPS" --endpoints "$endpoints" "${etcd_tls[@]}")
for f in "$work"/etcd-tls/e*.pid; do kill "$(cat "$f")" 2>/dev/null || true; done

# File writes, RS-6-3, on disks left quiet by what ran before, in the order plain, TLS, TLS,
# plain: on this disk the second of two runs differs from the first by more than TLS costs,
# so each kind runs once early and once late, and the two are added up.
rm -rf "$work/etcd-tls"; sync
c=(--size "$SIZE" --clients "$DATA_CLIENTS" --policy RS-6-3-1024k)
write() {  # write KIND [--tls]: one run on a fresh cluster
  local dir="$work/d$1"; shift
  "$bin/metactl" local up --dir "$dir" --voters 3 --observers 0 --blockservers 9 --racks 3 "$@" --detach >/dev/null
  run_cpu "$(all_pids "$dir")" data --op write "${c[@]}" --cluster "$dir"
  gone "$dir"
}
write_plain=$(write plain)
write_tls=$(write tls --tls)
write_tls2=$(write tls --tls)
write_plain2=$(write plain)

echo "$create_plain"; echo "$create_tls"; echo "$put_plain"; echo "$put_tls"
echo "$write_plain"; echo "$write_tls"; echo "$write_tls2"; echo "$write_plain2"
python3 - "$create_plain" "$create_tls" "$put_plain" "$put_tls" "$write_plain" "$write_tls" "$write_tls2" "$write_plain2" <<'PY'
import json, sys
cp, ct, pp, pt, wp1, wt1, wt2, wp2 = (json.loads(a) for a in sys.argv[1:9])
def both(a, b):  # two runs as one: bytes over time, CPU over operations
    mb = a["mb_per_sec"] * a["seconds"] + b["mb_per_sec"] * b["seconds"]
    secs = a["seconds"] + b["seconds"]
    ops = a["ops"] + b["ops"]
    return {"mb_per_sec": mb / secs, "seconds": secs, "ops": ops, "errors": a["errors"] + b["errors"],
            "server_cpu_us_per_op": [(x * a["ops"] + y * b["ops"]) / ops
                                     for x, y in zip(a["server_cpu_us_per_op"], b["server_cpu_us_per_op"])],
            "client_cpu_us_per_op": (a["client_cpu_us_per_op"] * a["ops"] + b["client_cpu_us_per_op"] * b["ops"]) / ops}
wp, wt = both(wp1, wp2), both(wt1, wt2)
print(f"\n{'run':<24}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}   CPU us/op: servers (sum) + loadgen")
for name, r in (("raftfs create, plain", cp), ("raftfs create, TLS", ct),
                ("etcd put, plain", pp), ("etcd put, TLS", pt)):
    servers = r["server_cpu_us_per_op"]
    cpu = f"{' / '.join(f'{s:.0f}' for s in servers)} ({sum(servers):.0f}) + {r['client_cpu_us_per_op']:.0f}"
    print(f"{name:<24}{r['ops_per_sec']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}   {cpu}")
# CPU per MiB of file written: every server (3 metaservers, 9 blockservers) + the writer.
def cpu_ms_per_mib(r):
    mib = r["mb_per_sec"] * r["seconds"]
    us = (sum(r["server_cpu_us_per_op"]) + r["client_cpu_us_per_op"]) * r["ops"]
    return us / 1000 / mib
print(f"\n{'run':<24}{'MB/s':>10}{'errors':>8}   CPU ms per MB written (servers + writer)")
for name, r in (("RS-6-3 write, plain (1)", wp1), ("RS-6-3 write, TLS (2)", wt1),
                ("RS-6-3 write, TLS (3)", wt2), ("RS-6-3 write, plain (4)", wp2),
                ("RS-6-3 write, plain", wp), ("RS-6-3 write, TLS", wt)):
    print(f"{name:<24}{r['mb_per_sec']:>10.1f}{r['errors']:>8}   {cpu_ms_per_mib(r):.2f}")
def cpu(r):
    return sum(r["server_cpu_us_per_op"]) + r["client_cpu_us_per_op"]
print(f"\nraftfs creates/s, TLS / plain = {ct['ops_per_sec'] / cp['ops_per_sec']:.2f}"
      f"   (CPU per op {cpu(ct) / cpu(cp):.2f}x)")
print(f"etcd puts/s,      TLS / plain = {pt['ops_per_sec'] / pp['ops_per_sec']:.2f}"
      f"   (CPU per op {cpu(pt) / cpu(pp):.2f}x)")
print(f"raftfs RS-6-3 write MB/s, TLS / plain = {wt['mb_per_sec'] / wp['mb_per_sec']:.2f}"
      f"   (CPU per MB {cpu_ms_per_mib(wt) / cpu_ms_per_mib(wp):.2f}x)")
print(f"raftfs creates/s with TLS / etcd puts/s with TLS = {ct['ops_per_sec'] / pt['ops_per_sec']:.2f}")
PY
