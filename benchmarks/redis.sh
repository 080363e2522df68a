#!/usr/bin/env bash
# The Redis ceiling: decisions/s through toolgate's Redis store (in process, no HTTP, 1,000 subjects, every
# call allowed) next to redis-benchmark running EVALSHA of the same acquire.lua at the same concurrency, in the
# same run against the same redis-server. The ratio is the figure (DESIGN.md section 9).
# Usage: bash benchmarks/redis.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
bash scripts/bootstrap.sh
swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-bench >&2
bench="$(swift build -c "${BENCH_CONFIGURATION:-release}" --show-bin-path)/toolgate-bench"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --daemonize no \
  --maxmemory-policy noeviction --loglevel warning >"$work/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

sha=$(redis-cli -p "$port" script load "$(cat lua/acquire.lua)")
"$bench" redis "$port" "$seconds" 1 16 64 | tee "$work/toolgate.txt"
for c in 1 16 64; do
  # Same script and arguments: one token bucket per random subject among 1,000, every call allowed.
  rps=$(redis-benchmark -p "$port" -c "$c" -P 1 -r 1000 -n $((seconds * (c < 16 ? 10000 : 40000))) -q \
    EVALSHA "$sha" 1 "bench:{grant:__rand_int__}:calls" "__rand_int__" 1 \
    token_bucket 60 1000000000 1 0 | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  echo "| redis-benchmark EVALSHA | $c | ${rps%.*} | - | - |"
done
