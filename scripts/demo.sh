#!/usr/bin/env bash
# The main job: builds toolgate and runs `toolgate demo`, which starts an example upstream MCP server and
# toolgate in front of it with examples/policy.json, then walks through an allowed call, refused calls and a
# rate limit, and prints the /metrics lines that changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The same build as scripts/test.sh (`--build-tests` compiles every module with testing enabled): a build with other
# flags (`--product toolgate` alone) invalidates that one and recompiles the dependencies at every switch.
swift build --build-tests
"$(swift build --show-bin-path)/toolgate" demo --policy examples/policy.json
