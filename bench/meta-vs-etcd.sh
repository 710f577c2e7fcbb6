#!/usr/bin/env bash
# raftfs metadata writes beside etcd puts, same machine, same run, same load generator:
#   loadgen meta --op create|mkdir against a local 3-voter raftfs (fsync before ack), and
#   loadgen etcd --op put against a 3-member etcd on loopback (fsync before ack),
# all at $CLIENTS concurrent clients, one after the other. Prints each report and the ratios.
#   bench/meta-vs-etcd.sh            (CLIENTS=64 OPS=200000 by default)
OPS=${OPS:-200000}
. "$(dirname "$0")/peers.sh"

# Three voters and no observer: the same replication factor as the 3-member etcd.
"$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 0 --detach >/dev/null
endpoints=$($PEER up "$work/etcd")

create=$(run_cpu "$(raftfs_pids "$work/raftfs")" meta --op create --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
mkdir=$(run_cpu "$(raftfs_pids "$work/raftfs")" meta --op mkdir --clients "$CLIENTS" --ops "$OPS" --cluster "$work/raftfs")
put=$(run_cpu "$(etcd_pids "$work/etcd")" etcd --op put --clients "$CLIENTS" --ops "$OPS" --endpoints "$endpoints")

batches=$(scrape "$work/raftfs" raftfs_meta_proposals_per_entry_)
timings=$(scrape "$work/raftfs" raftfs_meta_journal_)

echo "$create"; echo "$mkdir"; echo "$put"
python3 - "$create" "$mkdir" "$put" "$batches" "$timings" <<'PY'
import json, sys
create, mkdir, put, batches, timings = (json.loads(a) for a in sys.argv[1:6])
# Group commit on the active: client mutations per Raft entry (= per leader fsync).
for node, vals in batches.items():
    n = vals.get("raftfs_meta_proposals_per_entry_count", 0)
    if n:
        print(f"node {node} (active during the runs): {vals['raftfs_meta_proposals_per_entry_sum'] / n:.1f} mutations per entry over {n:.0f} entries")
# Where an entry's time goes (raftfs_meta_journal_*_seconds, metaserver/src/metrics.rs), mean per step over
# the create and mkdir runs (and their preparation).
print(f"\n{'member':<14}{'log append':>12}{'AppendEntries':>15}{'apply':>9}{'entry':>9}   (mean ms)")
for node, vals in sorted(timings.items()):
    def mean(step):
        n = vals.get(f"raftfs_meta_journal_{step}_seconds_count", 0)
        return f"{1000 * vals[f'raftfs_meta_journal_{step}_seconds_sum'] / n:.2f}" if n else "-"
    print(f"{node + ' ' + vals['role']:<14}{mean('log_append'):>12}{mean('append_entries'):>15}"
          f"{mean('apply'):>9}{mean('entry'):>9}")
# CPU per operation (user + system): each of the three servers, their sum, and the load
# generator. Everything shares this machine's cores, so 2 cores / total CPU per op is a ceiling
# on the rate that no batching or pipelining can pass.
print(f"\n{'run':<16}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}   CPU us/op: servers (sum) + loadgen")
for name, r in (("raftfs create", create), ("raftfs mkdir", mkdir), ("etcd put", put)):
    servers = r["server_cpu_us_per_op"]
    cpu = f"{' / '.join(f'{s:.0f}' for s in servers)} ({sum(servers):.0f}) + {r['client_cpu_us_per_op']:.0f}"
    print(f"{name:<16}{r['ops_per_sec']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}   {cpu}")
print(f"\nraftfs creates/s / etcd puts/s = {create['ops_per_sec'] / put['ops_per_sec']:.2f}")
print(f"raftfs mkdirs/s  / etcd puts/s = {mkdir['ops_per_sec'] / put['ops_per_sec']:.2f}")
PY
