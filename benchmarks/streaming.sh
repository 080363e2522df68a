#!/usr/bin/env bash
# Issue 14, target 3: a large event stream through toolgate against the same stream direct, in one run. The example
# upstream's /bench/sse answers a tools/call with N bytes of 4 KiB `notifications/message` events and then the
# result; curl posts the call directly and through toolgate (embedded store, the call allowed under one limit) and
# reads the whole stream. Reported: bytes/s and time to the first byte (curl's time_starttransfer), medians of the
# rounds, and the ratios.
# Usage: bash benchmarks/streaming.sh [MiB per stream, default 50] [rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-50}
rounds=${2:-5}
source benchmarks/lib.sh

stream_path="/bench/sse?bytes=$((mib << 20))&event=4096"
start_upstream_and_toolgate "$stream_path"
stream_url="http://127.0.0.1:$upstream_port$stream_path"

call='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"stream"}}}'
fetch() {  # url -> "ttfb_seconds bytes bytes_per_second"
  curl -s -o "$work/body" -w '%{time_starttransfer} %{size_download} %{speed_download}\n' -X POST \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2025-06-18' --data "$call" "$1"
  tail -c 200 "$work/body" | grep -q '"result"' || { echo "the stream from $1 did not end with the result" >&2; exit 1; }
}
fetch "$stream_url" >/dev/null  # warm-up: connections, caches
fetch "http://127.0.0.1:$toolgate_port/mcp" >/dev/null
: >"$work/direct"; : >"$work/through"
for _ in $(seq 1 "$rounds"); do
  fetch "$stream_url" >>"$work/direct"
  fetch "http://127.0.0.1:$toolgate_port/mcp" >>"$work/through"
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
direct_rate=$(awk '{print $3}' "$work/direct" | median); through_rate=$(awk '{print $3}' "$work/through" | median)
direct_ttfb=$(awk '{print $1}' "$work/direct" | median); through_ttfb=$(awk '{print $1}' "$work/through" | median)
bytes=$(awk 'NR == 1 {print $2}' "$work/through")
echo "| target | bytes per stream | MB/s (median of $rounds) | time to first byte ms (median) |"
echo "|---|---:|---:|---:|"
awk -v b="$bytes" -v dr="$direct_rate" -v tr="$through_rate" -v dt="$direct_ttfb" -v tt="$through_ttfb" 'BEGIN {
  printf "| upstream direct | %d | %.0f | %.3f |\n", b, dr / 1e6, dt * 1000
  printf "| through toolgate | %d | %.0f | %.3f |\n", b, tr / 1e6, tt * 1000
  printf "\nthroughput ratio toolgate / direct: %.2f (target >= 0.9); first byte: %+.3f ms against direct (target <= 1 ms)\n", tr / dr, (tt - dt) * 1000 }'
