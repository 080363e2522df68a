#!/usr/bin/env bash
# Runs every test: Swift unit, property, CLI, upstream-client and system-library tests, then the end-to-end suite in
# which the official MCP Python SDK drives the real toolgate binary (in parallel: each test has its own ports and
# processes), the fuzz targets' seed inputs, a short round of every benchmark script, and the docker/ files. Starts
# redis-server on a free loopback port for the tests that need it and stops it afterwards. One debug build serves
# every phase. Prints each phase's duration at the end, passed or not, so the next person sees where time goes.
#
#   E2E_WORKERS=N   end-to-end workers (default 4: most of a test's time is spent waiting on processes and timers)
set -euo pipefail
cd "$(dirname "$0")/.."

phase_lines=()
phase_started=$(date +%s)
current_phase=""
report_phases() {
  local rc=$?
  [ -n "$current_phase" ] && phase_lines+=("$(printf '%6ss  %s (did not finish)' "$(($(date +%s) - phase_clock))" "$current_phase")")
  echo "test: phase durations" >&2
  local line
  for line in "${phase_lines[@]}"; do echo "test: $line" >&2; done
  echo "test: $(printf '%6ss  total' "$(($(date +%s) - phase_started))")" >&2
  stop_test_redis 2>/dev/null || true
  return "$rc"
}
# phase NAME COMMAND...: runs it and records how long it took; a failure stops the run (and the report says where).
phase() {
  current_phase=$1
  shift
  phase_clock=$(date +%s)
  echo "test: == $current_phase" >&2
  "$@"
  phase_lines+=("$(printf '%6ss  %s' "$(($(date +%s) - phase_clock))" "$current_phase")")
  current_phase=""
}

trap report_phases EXIT
phase "bootstrap (system packages)" bash scripts/bootstrap.sh

source scripts/test-redis.sh
trap report_phases EXIT  # test-redis.sh set its own; report_phases stops that Redis too
workdir=$redis_dir

phase "swift build --build-tests (debug; every phase uses it)" swift build --build-tests
phase "swift test" swift test --skip-build
bin="$(swift build --show-bin-path)"
phase "e2e (pytest, ${E2E_WORKERS:-4} workers)" env TOOLGATE_BIN="$bin/toolgate" bash Tests/e2e/run.sh -n "${E2E_WORKERS:-4}" --dist loadfile
# DESIGN section 10: /mcp/NAME is exactly what /mcp is for one upstream. The protocol batteries again, each upstream
# as the one server of a servers file and every request through /mcp/only (metrics then carry a server label, so the
# tests that compare exact label sets stay in the run above).
phase "e2e through /mcp/NAME (protocol batteries)" env TOOLGATE_BIN="$bin/toolgate" E2E_NAMED_ROUTE=1 bash Tests/e2e/run.sh \
  -n "${E2E_WORKERS:-4}" --dist loadfile test_handshake_era.py test_per_request_era.py test_batches.py test_progress.py \
  test_multi_round.py test_proxy_holes.py test_upstream_faults.py test_hostile_http.py test_approvals.py test_refunds.py

# Every fuzz target's seed inputs (Tests/Fuzz/Corpus: regressions included) through the plain build, each property
# checked. Fuzzing itself is `bash scripts/fuzz.sh SECONDS` (its own sanitizer build; BENCHMARKS.md has long runs).
phase "fuzz targets: seed corpora replayed" bash scripts/fuzz.sh --replay

# Every benchmark script, one short round each on the debug build: they keep working (no thresholds; timing is
# never asserted). BENCHMARKS.md holds the figures of full release runs.
benchmarks() {
  BENCH_CONFIGURATION=debug bash benchmarks/run.sh --quick >"$workdir/benchmarks.txt" 2>"$workdir/benchmarks.log" || {
    echo "test: benchmarks/run.sh --quick failed:" >&2; tail -40 "$workdir/benchmarks.log" >&2; return 1; }
  echo "test: benchmarks/run.sh --quick: $(grep -c '^## ' "$workdir/benchmarks.txt") scripts ran" >&2
}
phase "benchmarks/run.sh --quick (debug build)" benchmarks

# The docker/ files without a Docker engine: compose, Prometheus and Grafana files checked, and the build stage's
# context assembled from its COPY lines. Its release build runs with `bash scripts/check-docker.sh` (minutes).
phase "scripts/check-docker.sh --skip-build" bash scripts/check-docker.sh --skip-build
