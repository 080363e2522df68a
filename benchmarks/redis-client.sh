#!/usr/bin/env bash
# The Redis client alone: N concurrent tasks sending INCR through one RedisClient (2 pipelined connections),
# against a redis-server started here on a free loopback port; then redis-benchmark with one connection per
# client and no pipelining (-P 1) at the same concurrency, for comparison. Release build.
# Usage: bash benchmarks/redis-client.sh [seconds per row]   (prints Markdown tables; BENCHMARKS.md records them)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-redis-bench --scratch-path "${SCRATCH:-.build}" >&2
bench="$(swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-redis-bench --scratch-path "${SCRATCH:-.build}" --show-bin-path)/toolgate-redis-bench"

workdir=$(mktemp -d)
redis_pid=
cleanup() {
  [ -n "$redis_pid" ] && kill -9 "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" --daemonize no \
  --loglevel warning >"$workdir/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "toolgate RedisClient, INCR on 1000 keys, ${seconds} s per row:"
"$bench" "redis://127.0.0.1:$port" "$seconds" 1 16 64 256 1024
echo
echo "redis-benchmark -t incr -P 1 (one connection per client, no pipelining):"
echo "| clients | requests/s | p50 ms |"
echo "|---:|---:|---:|"
for clients in 1 16 64 256; do
  redis-benchmark -p "$port" -c "$clients" -n $((seconds * 40000)) -t incr -P 1 -r 1000 --csv 2>/dev/null \
    | awk -F'","' -v c="$clients" 'NR==2 {gsub(/"/, "", $2); gsub(/"/, "", $5); print "| " c " | " $2 " | " $5 " |"}'
done
