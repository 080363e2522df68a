#!/usr/bin/env bash
# Decisions/s through toolgate's Redis store on a 3-master Redis Cluster next to one standalone Redis, in the same
# run (issue 9): in process (no HTTP), 1,000 subjects, every call allowed; each store once with one limit per
# call (one EVALSHA on its slot's master) and once with a second, global limit (a cross-slot call on the cluster:
# two EVALSHAs, one per slot; one EVALSHA on standalone Redis).
# Usage: bash benchmarks/redis-cluster.sh [seconds per row, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
bash scripts/bootstrap.sh
swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-bench >&2
bench="$(swift build -c "${BENCH_CONFIGURATION:-release}" --show-bin-path)/toolgate-bench"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Ports P with P and P+10000 free (the cluster bus), below the kernel's ephemeral range where possible.
free_pair() {
  python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randint(20000, 28000)
    if free(p) and free(p + 10000):
        print(p); break
PY
}
start() {  # start PORT [extra redis-server flags...]
  local port=$1; shift
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --daemonize no \
    --maxmemory-policy noeviction --loglevel warning "$@" >"$work/redis-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server on $port did not start" >&2; cat "$work/redis-$port.log" >&2; exit 1
}

standalone=$(free_pair)
start "$standalone"
cluster=()
for _ in 1 2 3; do
  p=$(free_pair)
  start "$p" --cluster-enabled yes --cluster-node-timeout 2000 --cluster-config-file "$work/nodes-$p.conf"
  cluster+=("$p")
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster[@]}") --cluster-replicas 0 --cluster-yes >"$work/create.log" 2>&1
for _ in $(seq 1 100); do
  ok=0
  for p in "${cluster[@]}"; do redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && ok=$((ok + 1)); done
  [ "$ok" -eq 3 ] && break
  sleep 0.1
done
seeds=$(IFS=,; echo "${cluster[*]}")

for limits in 1 2; do
  TOOLGATE_BENCH_LIMITS=$limits "$bench" redis "$standalone" "$seconds" 1 16 64
  TOOLGATE_BENCH_LIMITS=$limits "$bench" redis "$seeds" "$seconds" 1 16 64
done
