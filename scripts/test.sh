#!/usr/bin/env bash
# Runs every test: Swift unit, property, CLI, upstream-client and system-library tests, then the end-to-end
# suite in which the official MCP Python SDK drives the real toolgate binary. Starts redis-server on a free
# loopback port for the tests that need it and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

source scripts/test-redis.sh
workdir=$redis_dir

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
