#!/usr/bin/env bash
# Issue 14, target 4: toolgate's resident memory idle, with N event streams open at once, and sampled as a
# million calls go through. Embedded store, release build, example-upstream behind it.
# - idle: a fresh toolgate after one call, then 2 s of nothing;
# - streams: N clients each hold a tools/call whose answer is an event stream the upstream keeps open
#   (example-upstream /bench/sse with holdMs), RSS read once all N have their first event, and again after they close;
# - calls: wrk at 64 connections in rounds, RSS sampled after each round, for a token-bucket limit (state per
#   subject, constant) and for the default sliding log (one entry per admitted call inside its window, DESIGN §5,
#   so it grows for one window and then stays level).
# Usage: bash benchmarks/memory.sh [calls, default 1000000] [streams, default 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-1000000}
streams=${2:-1000}
source benchmarks/lib.sh
# VmRSS, and its split: RssAnon (heap, stacks: toolgate's own) and RssFile (pages of the binary and the shared
# libraries it maps: clean, shared with other processes using the same files, and reclaimable by the kernel).
memory() { awk '/^(VmRSS|RssAnon|RssFile):/ { v[$1] = $2 } END {
  printf "%.1f | %.1f | %.1f", v["VmRSS:"] / 1024, v["RssAnon:"] / 1024, v["RssFile:"] / 1024 }' "/proc/$1/status"; }
ulimit -n 65536 2>/dev/null || true

upstream_port=$(free_port)
"$bin/example-upstream" "$upstream_port" >"$work/upstream.log" 2>&1 &
pids+=($!)
wait_port "$upstream_port"
start_toolgate() {  # policy-json upstream-url -> sets tg_pid, tg_port
  echo "$1" >"$work/policy-$$.json"
  tg_port=$(free_port)
  "$bin/toolgate" serve --policy "$work/policy-$$.json" --upstream "$2" --listen "127.0.0.1:$tg_port" \
    --upstream-max-connections $((streams + 64)) --log-level warning >>"$work/toolgate.log" 2>&1 &
  tg_pid=$!
  pids+=($tg_pid)
  wait_http "http://127.0.0.1:$tg_port/healthz"
}
limit() { echo '{"version":"1","default":"deny","tools":{"echo":{"limits":[{"counter":"bench","window":"minute","max":2000000000,"scope":"grant"'"$1"'}]}}}'; }
call='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}'

echo "| state | RSS MiB | anonymous MiB | file-backed MiB |"
echo "|---|---:|---:|---:|"
start_toolgate "$(limit '')" "http://127.0.0.1:$upstream_port/bench/sse?bytes=4096&event=4096&holdMs=600000"
echo "| started, before any call | $(memory "$tg_pid") |"
coproc OPENER { python3 benchmarks/open-streams.py 127.0.0.1 "$tg_port" "$streams"; }
read -r opened <&"${OPENER[0]}"
echo "| $opened event streams open | $(memory "$tg_pid") |"
echo >&"${OPENER[1]}"
read -r _ <&"${OPENER[0]}"
sleep 2
echo "| the streams closed, 2 s later | $(memory "$tg_pid") |"
kill "$tg_pid"

for algorithm in token_bucket sliding; do
  start_toolgate "$(limit ',"algorithm":"'$algorithm'"')" "http://127.0.0.1:$upstream_port/mcp"
  curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    --data "$call" "http://127.0.0.1:$tg_port/mcp"
  sleep 2
  echo "| $algorithm: idle after one call | $(memory "$tg_pid") |"
  done_calls=0
  round_seconds=$(( calls >= 200000 ? 20 : 2 ))
  while [ "$done_calls" -lt "$calls" ]; do
    line=$(wrk -t2 -c64 -d"${round_seconds}s" -s benchmarks/wrk-tools-call.lua "http://127.0.0.1:$tg_port/mcp" | grep '^RESULT')
    eval "${line#RESULT }"
    done_calls=$((done_calls + requests))
    echo "| $algorithm: after $done_calls calls | $(memory "$tg_pid") |"
  done
  kill "$tg_pid"
done
