#!/usr/bin/env bash
# Issue 14: a peer, side by side, in one run. The same load (wrk posting tools/call, benchmarks/wrk-tools-call.lua)
# directly to example-upstream, through toolgate (one sliding-window limit, embedded store), and through FastMCP's
# own proxy (PyPI `fastmcp`, `create_proxy` with its RateLimitingMiddleware; stateless HTTP, JSON answers) in front
# of the same upstream, at concurrency 1, 16 and 64. The ratios to direct are the figures.
# Usage: bash benchmarks/peer.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
source benchmarks/lib.sh
# FastMCP gets a virtualenv of its own: it is not one of toolgate's test dependencies.
venv=.venv-peer
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import fastmcp' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'fastmcp==4.2.3'
fi
peer_version=$("$venv/bin/python" -c 'import fastmcp; print(fastmcp.__version__)')
wait_call() {
  for _ in $(seq 1 200); do
    curl -fs -o /dev/null "$1" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}' && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  exit 1
}

start_upstream_and_toolgate
peer_port=$(free_port)
"$venv/bin/python" benchmarks/peer/fastmcp_proxy.py "http://127.0.0.1:$upstream_port/mcp" "$peer_port" >"$work/peer.log" 2>&1 &
pids+=($!)
for port in "$upstream_port" "$toolgate_port" "$peer_port"; do wait_call "http://127.0.0.1:$port/mcp"; done

run() {  # url concurrency -> "requests_per_second p50_us errors"
  local line
  line=$(wrk -t"$(( $2 < 2 ? 1 : 2 ))" -c"$2" -d"${duration}s" --latency -s benchmarks/wrk-tools-call.lua "$1" | grep '^RESULT')
  eval "${line#RESULT }"
  echo "$(awk -v r="$requests" -v s="$seconds" 'BEGIN { printf "%.0f", r / s }') $p50_us $errors"
}

echo "FastMCP $peer_version"
echo
echo "| concurrency | direct calls/s | toolgate calls/s | toolgate ÷ direct | FastMCP proxy calls/s | FastMCP ÷ direct | toolgate ÷ FastMCP | p50 µs direct / toolgate / FastMCP | errors |"
echo "|---:|---:|---:|---:|---:|---:|---:|---|---:|"
for c in 1 16 64; do
  read -r d dp de < <(run "http://127.0.0.1:$upstream_port/mcp" "$c")
  read -r t tp te < <(run "http://127.0.0.1:$toolgate_port/mcp" "$c")
  read -r p pp pe < <(run "http://127.0.0.1:$peer_port/mcp" "$c")
  awk -v c="$c" -v d="$d" -v t="$t" -v p="$p" -v dp="$dp" -v tp="$tp" -v pp="$pp" -v e=$((de + te + pe)) 'BEGIN {
    printf "| %d | %d | %d | %.2f | %d | %.2f | %.1f | %d / %d / %d | %d |\n", c, d, t, t / d, p, p / d, t / p, dp, tp, pp, e }'
done
