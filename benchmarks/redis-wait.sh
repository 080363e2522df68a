#!/usr/bin/env bash
# What --redis-wait-replicas 1 costs: decisions/s through toolgate's Redis store (in process, no HTTP, 1,000
# subjects, every call allowed) against a local master with one replica, without and with WAIT 1, in the same run
# against the same servers. Loopback replication is the best case: on a network each WAIT adds one master-to-replica
# round trip to every decision that consumed.
# Usage: bash benchmarks/redis-wait.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-bench >&2
bench="$(swift build -c "${BENCH_CONFIGURATION:-release}" --show-bin-path)/toolgate-bench"

work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
master=$(free_port)
replica=$(free_port)
mkdir -p "$work/master" "$work/replica"
redis-server --port "$master" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/master" --daemonize no \
  --maxmemory-policy noeviction --repl-diskless-sync-delay 0 --loglevel warning >"$work/master.log" 2>&1 &
master_pid=$!
redis-server --port "$replica" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/replica" --daemonize no \
  --replicaof 127.0.0.1 "$master" --loglevel warning >"$work/replica.log" 2>&1 &
replica_pid=$!
trap 'kill $master_pid $replica_pid 2>/dev/null; wait $master_pid $replica_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ "$(redis-cli -p "$master" wait 1 100 2>/dev/null)" = "1" ] && break; sleep 0.1; done
[ "$(redis-cli -p "$master" wait 1 100)" = "1" ] || { echo "the replica did not sync" >&2; exit 1; }

"$bench" redis "$master" "$seconds" 1 16 64
TOOLGATE_BENCH_WAIT_REPLICAS=1 "$bench" redis "$master" "$seconds" 1 16 64 | tail -n +3
