#!/usr/bin/env bash
# What guarding several servers from one sidecar costs (DESIGN.md section 10): wrk posts tools/call to the example
# upstream directly, through a toolgate with one --upstream (/mcp), and through a toolgate with a servers file of
# three servers, at /mcp/beta and at the merged endpoint /mcp (the same call as beta__echo; the policy has a section
# per server), side by side in one run, at concurrency 1 and 16.
# Usage: bash benchmarks/servers.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
source benchmarks/lib.sh

start_upstream_and_toolgate
several_port=$(free_port)
cat >"$work/servers.json" <<JSON
{"mcpServers": {
  "alpha": {"url": "http://127.0.0.1:$upstream_port/mcp"},
  "beta": {"url": "http://127.0.0.1:$upstream_port/mcp"},
  "gamma": {"url": "http://127.0.0.1:$upstream_port/mcp"}}}
JSON
cat >"$work/policy-servers.json" <<'JSON'
{"version":"1","default":"deny","servers":{
  "alpha":{"tools":{"shell_exec":{}}},
  "beta":{"tools":{"echo":{"limits":[{"counter":"bench","window":"minute","max":2000000000,"scope":"grant"}]}}},
  "gamma":{"tools":{"echo":{}}}}}
JSON
"$bin/toolgate" serve --policy "$work/policy-servers.json" --servers "$work/servers.json" \
  --listen "127.0.0.1:$several_port" --log-level warning >"$work/toolgate-servers.log" 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:$several_port/healthz"
sleep 0.5

echo "| target | concurrency | requests/s | p50 µs | p99 µs | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for c in 1 16; do
  wrk_row "upstream direct" "http://127.0.0.1:$upstream_port/mcp" "$c"
  wrk_row "toolgate --upstream, /mcp" "http://127.0.0.1:$toolgate_port/mcp" "$c"
  wrk_row "toolgate --servers (3), /mcp/beta" "http://127.0.0.1:$several_port/mcp/beta" "$c"
  WRK_TOOL=beta__echo wrk_row "toolgate --servers (3), merged /mcp, beta__echo" "http://127.0.0.1:$several_port/mcp" "$c"
done
allowed=$(curl -fs "http://127.0.0.1:$several_port/metrics" | grep 'toolgate_tool_calls_total{tool="echo",decision="allowed",server="beta"}' | awk '{print $2}')
echo
echo "calls counted as allowed on server beta: ${allowed:-0}"
unknown=$(curl -fs "http://127.0.0.1:$several_port/metrics" | awk '/^toolgate_tool_calls_total\{tool="_other",decision="unknown_tool"/ {s += $2} END {print s + 0}')
echo "calls answered as unknown tools: $unknown (must be 0: every merged call reached beta)"
