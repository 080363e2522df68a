#!/usr/bin/env bash
# Issue 14, target 1: CPU per proxied call, toolgate's beside the example upstream's, in the same run. wrk posts
# tools/call through toolgate (one sliding-window limit, embedded store) to example-upstream; the CPU time each
# process used (utime + stime from /proc/PID/stat) is divided by the calls served. The ratio is the figure: it
# holds across machines where absolute times drift.
# Usage: bash benchmarks/cpu-per-call.sh [seconds per round, default 10] [rounds, default 3] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
rounds=${2:-3}
connections=${3:-64}
source benchmarks/lib.sh
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start_upstream_and_toolgate
# Warm up both (connection pools, caches) before measuring.
wrk -t2 -c"$connections" -d2s -s benchmarks/wrk-tools-call.lua "http://127.0.0.1:$toolgate_port/mcp" >/dev/null
hz=$(getconf CLK_TCK)

echo "| round | calls/s through toolgate | toolgate CPU µs/call | upstream CPU µs/call | ratio |"
echo "|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$rounds"); do
  t0=$(cpu_ticks "$toolgate_pid"); u0=$(cpu_ticks "$upstream_pid")
  line=$(wrk -t2 -c"$connections" -d"${duration}s" -s benchmarks/wrk-tools-call.lua "http://127.0.0.1:$toolgate_port/mcp" | grep '^RESULT')
  t1=$(cpu_ticks "$toolgate_pid"); u1=$(cpu_ticks "$upstream_pid")
  eval "${line#RESULT }"
  awk -v r="$round" -v n="$requests" -v s="$seconds" -v dt=$((t1 - t0)) -v du=$((u1 - u0)) -v hz="$hz" 'BEGIN {
    t = dt / hz * 1e6 / n; u = du / hz * 1e6 / n
    printf "| %d | %.0f | %.1f | %.1f | %.2f |\n", r, n / s, t, u, t / u }'
done
