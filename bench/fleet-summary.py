#!/usr/bin/env python3
"""One line per figure of a `fleet-sim run` (its JSON on stdin): times, the real code's cost, the checks."""
import json,sys
d=json.load(sys.stdin); o=d['outcome']; r=o['record']; c=o['checks']
hb=r['heartbeats'] or 1
print(f"servers {d['servers']} racks {d['racks']} groups {d['groups']}: setup {d['setup_wall_s']:.1f}s run {d['run_wall_s']:.1f}s sim {o['simulated_s']:.0f}s healthy {o['seconds_to_healthy']} decommissioned {o['seconds_to_decommissioned']} degraded {o['still_degraded']}")
print(f"  placement {r['placement_cpu_s']:.2f}s reports {r['report_cpu_s']:.2f}s scan {r['scan_cpu_s']:.2f}s/{r['scan_rounds']} rounds = {r['scan_cpu_s']/max(r['scan_rounds'],1)*1e3:.1f} ms/round; heartbeats {r['heartbeat_cpu_s']:.2f}s/{hb} = {r['heartbeat_cpu_s']/hb*1e6:.1f} us each")
print(f"  rebuilt {r['blocks_rebuilt']} failed {r['tasks_failed']} cancelled {r['tasks_cancelled']} refused {r['refused_busy']} max_running {r['max_running']} rss {r['rss_after_setup']/2**20:.0f}/{r['rss_peak']/2**20:.0f} MiB")
print(f"  checks pass={c['pass']} xmits {c['max_xmits_carried']}/{c['xmits_limit']} over_handed {c['over_handed']} inversions {c['order_inversions']} budget_peak {c['budget_peak_ratio']} over {c['seconds_over_budget']}")
print("  hand_outs", [(h['count'], h['first_s'] and round(h['first_s'],1), h['last_rebuilt_s'] and round(h['last_rebuilt_s'],1)) for h in r['hand_outs']])
print("  datacenter pairs, GB:", {k: round(sum(v['per_second'])/1e9, 2) for k, v in r['datacenter_pairs'].items()})
