#!/usr/bin/env bash
# Runs every test: Swift unit, property, CLI, upstream-client and system-library tests, then the end-to-end
# suite in which the official MCP Python SDK drives the real toolgate binary. Starts redis-server on a free
# loopback port for the tests that need it and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

workdir=$(mktemp -d)
redis_pid=
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" \
  --maxmemory-policy noeviction --daemonize no --loglevel warning >"$workdir/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$port" ping >/dev/null || { echo "test: redis-server did not start:" >&2; cat "$workdir/redis.log" >&2; exit 1; }
export TOOLGATE_TEST_REDIS_PORT=$port
echo "test: redis-server on 127.0.0.1:$port" >&2

swift build --build-tests
swift test --skip-build

TOOLGATE_BIN="$(swift build --show-bin-path)/toolgate" bash Tests/e2e/run.sh

# Every fuzz target for 30 s under AddressSanitizer (its own build in .build-fuzz): keeps the harness alive and
# replays the seed corpus. Long runs: `bash scripts/fuzz.sh SECONDS`.
bash scripts/fuzz.sh 30

# Every benchmark script, one short round each on the debug build: they keep working (no thresholds; timing is
# never asserted). BENCHMARKS.md holds the figures of full release runs.
BENCH_CONFIGURATION=debug bash benchmarks/run.sh --quick >"$workdir/benchmarks.txt" 2>"$workdir/benchmarks.log" || {
  echo "test: benchmarks/run.sh --quick failed:" >&2; tail -40 "$workdir/benchmarks.log" >&2; exit 1; }
echo "test: benchmarks/run.sh --quick: $(grep -c '^## ' "$workdir/benchmarks.txt") scripts ran" >&2

# The docker/ files without a Docker engine: compose and Prometheus files checked, and the image's build stage run
# in a folder holding exactly what its COPY lines copy (a release build: several minutes).
bash scripts/check-docker.sh
