#!/usr/bin/env bash
# Fuzzes every parser of outside input with libFuzzer (Tests/Fuzz): each target for SECONDS (default 30), one
# after another, under AddressSanitizer. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#        scripts/fuzz.sh --replay [TARGET...]   every seed input through the plain build's targets (no libFuzzer,
#                                                no sanitizer): each property checked on each input, in seconds;
#                                                what scripts/test.sh runs, on the build it has already made
#
# The binary is built into .build-fuzz with -sanitize=fuzzer,address. Each target starts from its seed corpus
# (Tests/Fuzz/Corpus/TARGET, in git) plus what earlier runs found (.build-fuzz/corpus/TARGET, not in git), with
# its dictionary. A crash or a violated property stops the script with the input saved as
# .build-fuzz/crashes/TARGET-crash-*; replay it with a plain build: `swift run toolgate-fuzz TARGET FILE`.
# Prints one line per target: executions, coverage (libFuzzer's edges and features) and corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(jsonrpc sse policy-json policy-yaml grants redis-url mcp-name argument-rules regex)
if [ "${1:-}" = "--replay" ]; then
  shift
  targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
  swift build --product toolgate-fuzz 2>&1 | { grep -vE "^warning: (prohibited flag|'swift-distributed-tracing')" || true; } >&2
  binary="$(swift build --show-bin-path)/toolgate-fuzz"
  [ -x "$binary" ] || { echo "fuzz: $binary was not built" >&2; exit 1; }
  for target in "${targets[@]}"; do
    [ -d "Tests/Fuzz/Corpus/$target" ] || { echo "fuzz: unknown target \"$target\" (targets: ${all_targets[*]})" >&2; exit 64; }
    "$binary" "$target" "Tests/Fuzz/Corpus/$target" || { echo "fuzz: $target FAILED on its seed corpus" >&2; exit 1; }
  done
  exit 0
fi
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: SECONDS must be a positive whole number, got \"$seconds\"" >&2; exit 64; }

# A debug build (DEBUG keeps WorkMeter counting, which the argument-rules target checks) optimized with -O, which
# runs several times more inputs a second than -Onone. lld: ld.gold fails with an internal error on the
# instrumented objects.
swift build --product toolgate-fuzz --scratch-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DTOOLGATE_FUZZ -Xswiftc -O -Xswiftc -use-ld=lld 2>&1 \
  | grep -vE "Cannot export local symbol|^warning: (prohibited flag|'swift-distributed-tracing')|CMakeLists.txt$" >&2
binary=.build-fuzz/debug/toolgate-fuzz

dictionary_of() {
  case "$1" in
    jsonrpc|grants) echo Tests/Fuzz/Dictionaries/json.dict ;;
    policy-json|policy-yaml) echo Tests/Fuzz/Dictionaries/json.dict Tests/Fuzz/Dictionaries/policy.dict ;;
    sse) echo Tests/Fuzz/Dictionaries/sse.dict Tests/Fuzz/Dictionaries/json.dict ;;
    redis-url) echo Tests/Fuzz/Dictionaries/redis-url.dict ;;
    regex) echo Tests/Fuzz/Dictionaries/regex.dict ;;
    *) ;;
  esac
}

export LSAN_OPTIONS="suppressions=$PWD/Tests/Fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
mkdir -p .build-fuzz/crashes .build-fuzz/dict .build-fuzz/logs
total=0
printf '%-16s %12s %10s %8s %8s\n' target executions exec/s edges corpus
for target in "${targets[@]}"; do
  [ -d "Tests/Fuzz/Corpus/$target" ] || { echo "fuzz: unknown target \"$target\" (targets: ${all_targets[*]})" >&2; exit 64; }
  mkdir -p ".build-fuzz/corpus/$target"
  dict=()
  files=$(dictionary_of "$target")
  if [ -n "$files" ]; then
    # shellcheck disable=SC2086
    cat $files >".build-fuzz/dict/$target.dict"
    dict=("-dict=.build-fuzz/dict/$target.dict")
  fi
  log=".build-fuzz/logs/$target.log"
  # -timeout: one input running 10 s is a finding (every parser here is meant to be linear).
  # -rss_limit_mb: so is an input that makes a parser hold 2 GiB.
  if ! "$binary" "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
      -print_final_stats=1 -artifact_prefix=".build-fuzz/crashes/$target-" "${dict[@]}" \
      ".build-fuzz/corpus/$target" "Tests/Fuzz/Corpus/$target" >"$log" 2>&1; then
    echo "fuzz: $target FAILED; the input is in .build-fuzz/crashes/, the log in $log:" >&2
    grep -E "property violated|ERROR: |SUMMARY|Test unit written" "$log" | head -20 >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  edges=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find ".build-fuzz/corpus/$target" -type f | wc -l)
  printf '%-16s %12s %10s %8s %8s\n' "$target" "$runs" "$rate" "${edges:-0}" "$corpus"
  total=$((total + runs))
done
echo "fuzz: ${#targets[@]} targets, $total executions, no crash and no property violated"
