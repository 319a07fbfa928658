# One row of bench/metrics-onoff: "off|on LOAD {fanout JSON}" on stdin.
import sys, json
m, load, rest = sys.stdin.read().split(" ", 2)
r = json.loads(rest)["results"][0]
us = r["server_cpu_pct"] / 100 * 1e6 / r["deliveries_per_s"]
lat = r["latency_ms"]
print(f"{m:3} load={load} delivered={r['delivered']}/{r['expected']} dps={r['deliveries_per_s']:.0f} "
      f"p50={lat['p50']} p99={lat['p99']} server={r['server_cpu_pct']} bench={r['bench_cpu_pct']} "
      f"us_per_delivery={us:.3f} kept_up={r['kept_up']}")
