#!/usr/bin/env bash
# Every benchmark, one after the other, each printing its Markdown table (BENCHMARKS.md records the results).
#   bash benchmarks/run.sh           full runs (tens of minutes)
#   bash benchmarks/run.sh --quick   one short round each: proves the scripts still work; the figures mean nothing
# BENCH_CONFIGURATION=debug uses the debug build (what scripts/test.sh runs with --quick: no release build in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
[ "${1:-}" = "--quick" ] && quick=true
run() {
  echo
  echo "## bash benchmarks/$*"
  bash "benchmarks/$1" "${@:2}"
}
if $quick; then
  BENCH_SCALE=100 run core.sh
  run adversarial.sh
  run proxy.sh 1
  run servers.sh 1
  run cpu-per-call.sh 1 1
  run latency.sh 1 1
  run streaming.sh 4 1
  run memory.sh 2000 20
  run peer.sh 1
  run redis-client.sh 1
  run redis.sh 1
  run redis-state.sh --quick
  run redis-tls.sh 1
  run redis-cluster.sh 1
  run soak.sh 0.5
else
  run core.sh
  run adversarial.sh
  run proxy.sh
  run servers.sh
  run cpu-per-call.sh
  run latency.sh
  run streaming.sh
  run memory.sh
  run peer.sh
  run redis-client.sh
  run redis.sh
  run redis-state.sh
  run redis-tls.sh
  run redis-cluster.sh
  run soak.sh
fi
