#!/usr/bin/env bash
# What one counter costs Redis as its window fills (issue 9): the time one EVALSHA of acquire.lua takes inside
# Redis (INFO commandstats usec_per_call) for a sliding window holding 1k, 10k and 100k calls, next to a token
# bucket and a fixed window; and Redis memory per counter and per admitted call. Each row is measured with the
# current lua/acquire.lua and, for comparison, with the one before issue 7 (commit 15efe73, which read the whole
# log on every decision and wrote a refund record per call).
# Usage: bash benchmarks/redis-state.sh [--quick]   (--quick: windows of 1k and 2k calls, to prove the script works)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
command -v redis-benchmark >/dev/null
swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-bench >&2
bench="$(swift build -c "${BENCH_CONFIGURATION:-release}" --show-bin-path)/toolgate-bench"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --daemonize no \
  --maxmemory-policy noeviction --loglevel warning >"$work/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
cli() { redis-cli -p "$port" "$@"; }

git show 15efe73:lua/acquire.lua >"$work/old-acquire.lua"
new_sha=$(cli script load "$(cat lua/acquire.lua)")
old_sha=$(cli script load "$(cat "$work/old-acquire.lua")")

sizes="1000 10000 100000"
middle=10000
if [ "${1:-}" = "--quick" ]; then sizes="1000 2000"; middle=2000; fi

usec_per_call() { cli info commandstats | tr -d '\r' | grep '^cmdstat_evalsha:' | sed 's/.*usec_per_call=\([0-9.]*\).*/\1/'; }

# run VERSION KEY ALGORITHM MAX N: N calls on one counter (window one hour), one at a time.
run() {
  local version=$1 key=$2 algorithm=$3 max=$4 n=$5
  if [ "$version" = new ]; then
    redis-benchmark -p "$port" -c 1 -P 1 -n "$n" -r 1000000000 -q EVALSHA "$new_sha" 1 "$key" "c__rand_int__" 1 \
      "$algorithm" 3600 "$max" 1 0 >/dev/null
  else
    redis-benchmark -p "$port" -c 1 -P 1 -n "$n" -r 1000000000 -q EVALSHA "$old_sha" 2 "$key" "bench:call:__rand_int__" \
      "c__rand_int__" 1 "$algorithm" 3600 "$max" 1 0 >/dev/null
  fi
}

# fill VERSION KEY COUNT: a sliding log of COUNT calls made within the last minute.
fill() {
  local version=$1 key=$2 count=$3 now
  now=$(cli time | head -1)
  python3 - "$key" "$count" "$now" "$version" <<'PY' | redis-cli -p "$port" --pipe >/dev/null
import sys
key, count, now, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def command(*args):
    out = "*%d\r\n" % len(args)
    for a in args:
        a = str(a)
        out += "$%d\r\n%s\r\n" % (len(a.encode()), a)
    sys.stdout.write(out)
base = (now - 60) * 1000000
for start in range(0, count, 1000):
    args = []
    for i in range(start, min(count, start + 1000)):
        args += [base + i, "fill%d:1" % i]
    command("ZADD", key, *args)
if version == "new":
    command("ZADD", key, -1, "~%d~sliding:3600" % count)
command("PEXPIRE", key, 3600000)
PY
}

echo "| script | algorithm | calls in the window | admitted: µs per EVALSHA | denied (full): µs per EVALSHA | toolgate decisions/s (full, 16 callers) | Redis keys | memory, bytes |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for version in new old; do
  for algorithm in sliding fixed token_bucket; do
    for n in $sizes; do
      [ "$algorithm" != sliding ] && [ "$n" != "$middle" ] && continue
      cli flushall >/dev/null
      key="bench:{global:_}:$algorithm-$n"
      cli config resetstat >/dev/null
      # Fill to n - 1,000 (a sliding log written directly, in each script's own layout: filling it through the old
      # script would itself take time quadratic in n), then the last 1,000 admitted calls, then 2,000 denied ones.
      if [ "$algorithm" = sliding ]; then
        fill "$version" "$key" $((n - 1000))
      else
        run "$version" "$key" "$algorithm" "$n" $((n - 1000))
      fi
      cli config resetstat >/dev/null
      run "$version" "$key" "$algorithm" "$n" 1000
      admitted=$(usec_per_call)
      keys=$(cli dbsize)
      memory=$(cli info memory | tr -d '\r' | grep '^used_memory:' | cut -d: -f2)
      cli config resetstat >/dev/null
      run "$version" "$key" "$algorithm" "$n" 2000
      denied=$(usec_per_call)
      # The same full counter through toolgate's Redis store (new script only: the old one had another layout).
      rate=-
      if [ "$version" = new ]; then
        rate=$(TOOLGATE_BENCH_KEY="$key" TOOLGATE_BENCH_ALGORITHM="$algorithm" TOOLGATE_BENCH_MAX="$n" \
          "$bench" redis "$port" 2 16 | grep '^| toolgate' | awk -F'|' '{gsub(/ /, "", $4); print $4}')
      fi
      cli flushall >/dev/null
      baseline=$(cli info memory | tr -d '\r' | grep '^used_memory:' | cut -d: -f2)
      echo "| $version | $algorithm | $n | $admitted | $denied | $rate | $keys | $((memory - baseline)) |"
    done
  done
done
