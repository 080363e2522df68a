#!/usr/bin/env bash
# Issue 14, target 2: the latency toolgate adds to one caller. wrk at one connection posts tools/call to
# example-upstream directly and through toolgate (one sliding-window limit, embedded store), alternating, for a
# few rounds in one run; the added latency is through minus direct, at p50 and at p99 (medians over the rounds).
# Usage: bash benchmarks/latency.sh [seconds per row, default 5] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5}
rounds=${2:-3}
source benchmarks/lib.sh

start_upstream_and_toolgate
wrk -t1 -c1 -d1s -s benchmarks/wrk-tools-call.lua "http://127.0.0.1:$toolgate_port/mcp" >/dev/null  # warm-up

echo "| round | direct p50 µs | direct p99 µs | toolgate p50 µs | toolgate p99 µs | added p50 µs | added p99 µs |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$rounds"); do
  line=$(wrk -t1 -c1 -d"${duration}s" --latency -s benchmarks/wrk-tools-call.lua "http://127.0.0.1:$upstream_port/mcp" | grep '^RESULT')
  eval "${line#RESULT }"; d50=$p50_us; d99=$p99_us
  line=$(wrk -t1 -c1 -d"${duration}s" --latency -s benchmarks/wrk-tools-call.lua "http://127.0.0.1:$toolgate_port/mcp" | grep '^RESULT')
  eval "${line#RESULT }"; t50=$p50_us; t99=$p99_us
  echo "| $round | $d50 | $d99 | $t50 | $t99 | $((t50 - d50)) | $((t99 - d99)) |" | tee -a "$work/rows"
done
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
added50=$(awk -F'|' '{ print $7 + 0 }' "$work/rows" | median)
added99=$(awk -F'|' '{ print $8 + 0 }' "$work/rows" | median)
echo
echo "median added latency at concurrency 1: p50 $added50 µs (target <= 100), p99 $added99 µs (target <= 500)"
