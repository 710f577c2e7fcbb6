#!/usr/bin/env bash
# `metactl balance` (issue 19 item 5) under a steady create load through a router, same
# machine, same run: a federation of two nameservices (1 voter each) and 3 blockservers; a
# tree of FILES empty files under the mount /data; then, for each load rate in RATES
# (creates per second into /data, through the router), one balance of /data to the other
# nameservice (ns1 -> ns2, then back, ...). Prints, per balance: the rounds and their
# changes, the read-only window, the load's failed creates (all READ_ONLY, inside the window)
# and the balance's wall time.
#   bench/balance.sh          (FILES=2000 RATES="0 5 20" by default)
FILES=${FILES:-2000}
RATES=${RATES:-0 5 20}
. "$(dirname "$0")/peers.sh"

fed="$work/fed"
"$bin/metactl" local up --dir "$fed" --voters 1 --observers 0 --nameservices 2 \
  --blockservers 3 --racks 3 --routers 1 --detach >/dev/null
cleanup_fed() { "$bin/metactl" local down --dir "$fed" >/dev/null 2>&1 || true; }
trap 'cleanup_fed; cleanup' EXIT
"$bin/metactl" --cluster "$fed" mount add /data ns1:/data
"$bin/metactl" --cluster "$fed" fs mkdir -p /data
echo "\$ loadgen meta --op create --ops $FILES --roots /data (the tree)" >&2
"$bin/loadgen" --json meta --op create --clients 8 --ops "$FILES" --roots /data \
  --cluster "$fed" >/dev/null

results=()
to=ns2
for rate in $RATES; do
  errors="$work/errors-$rate.jsonl"
  : > "$errors"
  load=""
  if [ "$rate" != 0 ]; then
    # Longer than any balance here; stopped once the balance is done.
    "$bin/loadgen" --rate "$rate" --error-log "$errors" --json meta --op create --clients 4 \
      --ops $((rate * 3600)) --roots /data --cluster "$fed" >/dev/null 2>&1 &
    load=$!
    sleep 3
  fi
  echo "\$ metactl --cluster fed balance /data $to --json   (load: $rate creates/s)" >&2
  t0=$(date +%s.%N)
  report=$("$bin/metactl" --cluster "$fed" balance /data "$to" --json --settle 3s)
  t1=$(date +%s.%N)
  [ -n "$load" ] && { kill "$load" 2>/dev/null || true; wait "$load" 2>/dev/null || true; }
  results+=("$rate" "$report" "$(cat "$errors")" "$(python3 -c "print($t1 - $t0)")")
  if [ "$to" = ns2 ]; then to=ns1; else to=ns2; fi
done

python3 - "$FILES" "${results[@]}" <<'PY'
import json, sys
files = int(sys.argv[1]); rest = sys.argv[2:]
print(f"\n{'load/s':>7}{'rounds':>8}  {'changes per round':<28}{'window ms':>10}{'failed':>8}{'outside':>9}{'seconds':>9}")
for i in range(0, len(rest), 4):
    rate, report, errors, secs = rest[i], json.loads(rest[i + 1]), rest[i + 2], float(rest[i + 3])
    fails = [json.loads(l) for l in errors.splitlines() if l.strip()]
    lo, hi = report["window_start_ms"], report["window_end_ms"]
    outside = sum(1 for f in fails if f["kind"] != "ReadOnly" or f["began_ms"] > hi or f["ended_ms"] < lo)
    changes = ",".join(str(r["changes"]) for r in report["rounds"])
    print(f"{rate:>7}{len(report['rounds']):>8}  {changes:<28}{report['window_ms']:>10}{len(fails):>8}{outside:>9}{secs:>9.1f}")
print(f"\ntree: {files} files (+ what the loads created); 'outside': failures not READ_ONLY or outside the window")
PY
