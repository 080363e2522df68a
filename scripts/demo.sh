#!/usr/bin/env bash
# The main job: builds toolgate and validates the example policies with `toolgate check`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
swift build --product toolgate
bin=$(swift build --product toolgate --show-bin-path)/toolgate
echo "\$ toolgate check examples/policy.json examples/seed-policy.json"
"$bin" check examples/policy.json examples/seed-policy.json
echo
echo "\$ toolgate check Tests/ToolgateCoreTests/Fixtures/invalid/many_errors.json   # a broken policy: every error, with its path"
"$bin" check Tests/ToolgateCoreTests/Fixtures/invalid/many_errors.json || echo "(exit status $?)"
