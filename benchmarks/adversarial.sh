#!/usr/bin/env bash
# What one hostile request costs: 1 MiB strings of combining marks against plain ones, parsed and evaluated
# (release build, one process, no I/O); then the catastrophic-backtracking regex of issue 8 with its input.
# Usage: bash benchmarks/adversarial.sh   (prints Markdown; BENCHMARKS.md records the results)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-bench >&2
"$(swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-bench --show-bin-path)/toolgate-bench" adversarial
