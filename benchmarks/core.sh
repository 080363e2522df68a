#!/usr/bin/env bash
# Per-call decision path: policy evaluation and the embedded store. Release build, one process, no I/O.
# Usage: bash benchmarks/core.sh        (prints a Markdown table; BENCHMARKS.md records the results)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-bench >&2
"$(swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-bench --show-bin-path)/toolgate-bench" examples/policy.json
