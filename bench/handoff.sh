#!/usr/bin/env bash
# A planned restart of the active beside a crash of it (issue 20 item 2), same machine, same
# run: a 3-voter cluster under a steady `loadgen meta --op create` load; RESTART_AT seconds
# in, the active is stopped with `metactl local stop` (SIGTERM: it hands its leadership to
# the most caught-up voter first) in one run, and killed (`local stop --kill`) in the other,
# then started again. Prints latency percentiles of the whole run and of the calls begun
# from 1 s before the stop to WINDOW_S after it (from loadgen's --latency-log), the worst
# call and the failed calls: a hand-off costs the clients a redirect, a crash an election.
#   bench/handoff.sh      (RATE=200 SECONDS_=30 RESTART_AT=10 WINDOW_S=5 by default)
RATE=${RATE:-200}
SECONDS_=${SECONDS_:-30}
RESTART_AT=${RESTART_AT:-10}
WINDOW_S=${WINDOW_S:-5}
. "$(dirname "$0")/peers.sh"

results=()
for how in handoff kill; do
  dir="$work/$how"
  "$bin/metactl" local up --dir "$dir" --voters 3 --observers 0 --detach >/dev/null
  # A leader of some standing (openraft: a vote younger than the lease is not given up).
  sleep 2
  status() {
    "$bin/metactl" --cluster "$dir" cluster status --json |
      python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["leader"], s["term"])'
  }
  read -r active term0 < <(status)
  echo "\$ loadgen --rate $RATE meta --op create --clients 8 --ops $((RATE * SECONDS_))   ($how of node $active at ${RESTART_AT}s)" >&2
  "$bin/loadgen" --rate "$RATE" --latency-log "$work/$how.lat" --error-log "$work/$how.err" \
    --json meta --op create --clients 8 --ops $((RATE * SECONDS_)) \
    --cluster "$dir" > "$work/$how.json" &
  load=$!
  sleep "$RESTART_AT"
  t0=$(date +%s%3N)
  if [ "$how" = handoff ]; then
    "$bin/metactl" local stop --dir "$dir" --id "$active"
  else
    "$bin/metactl" local stop --dir "$dir" --id "$active" --kill
  fi
  t1=$(date +%s%3N)
  sleep 2
  read -r leader term1 < <(status)
  echo "  active $active (term $term0) -> $leader (term $term1)" >&2
  "$bin/metactl" local start --dir "$dir" --id "$active" 2>/dev/null
  wait "$load"
  "$bin/metactl" local down --dir "$dir" >/dev/null
  touch "$work/$how.err"
  results+=("$how" "$(cat "$work/$how.json")" "$t0" "$t1" "$work/$how.lat" "$work/$how.err")
done

python3 - "$WINDOW_S" "${results[@]}" <<'PY'
import json, sys
window = float(sys.argv[1]) * 1000; rest = sys.argv[2:]
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
print(f"\n{'stop of the active':<28}{'whole run: p50':>15}{'p99':>8}{'max ms':>9}{'errors':>8}"
      f"{'   around the stop: ops':>24}{'p99':>8}{'max ms':>9}")
for i in range(0, len(rest), 6):
    how, r, t0, t1, lat, err = rest[i], json.loads(rest[i + 1]), int(rest[i + 2]), int(rest[i + 3]), rest[i + 4], rest[i + 5]
    # Calls begun from 1 s before the stop to WINDOW_S after it was asked for.
    near = [l["ms"] for l in map(json.loads, open(lat)) if t0 - 1000 <= l["began_ms"] <= t0 + window]
    errors = sum(1 for _ in open(err))
    name = {"handoff": "SIGTERM (hand-off)", "kill": "kill -9 (election)"}[how]
    print(f"{name:<28}{r['p50_ms']:>15.2f}{r['p99_ms']:>8.2f}{r['max_ms']:>9.1f}{errors:>8}"
          f"{len(near):>24}{pct(near, 0.99):>8.1f}{max(near, default=0):>9.1f}   (stop took {t1 - t0} ms)")
PY
