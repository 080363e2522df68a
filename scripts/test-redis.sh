# Sourced by scripts/test.sh and scripts/sanitize.sh: starts a private redis-server on a free loopback port for the
# Swift tests that need one, exports TOOLGATE_TEST_REDIS_PORT, and stops it (and removes its folder) on exit.
redis_dir=$(mktemp -d)
redis_pid=
stop_test_redis() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  rm -rf "$redis_dir"
}
trap stop_test_redis EXIT

redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" \
  --maxmemory-policy noeviction --daemonize no --loglevel warning >"$redis_dir/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null || { echo "test: redis-server did not start:" >&2; cat "$redis_dir/redis.log" >&2; exit 1; }
export TOOLGATE_TEST_REDIS_PORT=$redis_port
echo "test: redis-server on 127.0.0.1:$redis_port" >&2
