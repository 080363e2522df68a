#!/usr/bin/env bash
# The Swift test suite under a sanitizer: `scripts/sanitize.sh address|thread [swift test arguments...]`.
# AddressSanitizer builds into .build-asan and ThreadSanitizer into .build-tsan, never .build, so neither disturbs
# the normal build; each is a full build of every target with the sanitizer's instrumentation (about 15 minutes
# on 2 cores the first time). A private redis-server serves the tests that need one. Any report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-}
flags=()
case "$kind" in
  address) scratch=.build-asan ;;
  # TOOLGATE_TSAN: `Mutex` becomes a pthread mutex ThreadSanitizer can see (Sources/ToolgateCore/Concurrency).
  thread) scratch=.build-tsan; flags=(-Xswiftc -DTOOLGATE_TSAN) ;;
  *) echo "usage: scripts/sanitize.sh address|thread [swift test arguments...]" >&2; exit 64 ;;
esac
shift

bash scripts/bootstrap.sh
source scripts/test-redis.sh

swift build --build-tests --sanitize="$kind" --scratch-path "$scratch" "${flags[@]}"
# halt_on_error: the first report fails the test process rather than scrolling by in a passing run.
export ASAN_OPTIONS="halt_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# Leaks are checked at exit, less what test infrastructure (Foundation's Process, XCTest, NIO's testing channel)
# keeps alive: Tests/lsan-tests.supp names each.
export LSAN_OPTIONS="suppressions=$PWD/Tests/lsan-tests.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" "${flags[@]}" "$@"
