#!/usr/bin/env bash
# What toolgate adds in front of an MCP server. wrk posts tools/call to the example upstream directly, then
# through toolgate (a policy with one sliding-window limit, embedded store), at concurrency 1, 16 and 64.
# Prints a Markdown table; BENCHMARKS.md records the results and the machine.
# Usage: bash benchmarks/proxy.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
source benchmarks/lib.sh

start_upstream_and_toolgate
sleep 0.5

echo "| target | concurrency | requests/s | p50 µs | p99 µs | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for c in 1 16 64; do
  wrk_row "upstream direct" "http://127.0.0.1:$upstream_port/mcp" "$c"
  wrk_row "through toolgate" "http://127.0.0.1:$toolgate_port/mcp" "$c"
done
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$toolgate_pid/status")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$toolgate_pid/status")
echo
echo "toolgate resident memory after the runs: ${rss_kb} KiB (peak ${hwm_kb} KiB)"
allowed=$(curl -fs "http://127.0.0.1:$toolgate_port/metrics" | grep 'toolgate_tool_calls_total{tool="echo",decision="allowed"}' | awk '{print $2}')
echo "calls counted as allowed by toolgate: ${allowed:-0}"
