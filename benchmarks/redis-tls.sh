#!/usr/bin/env bash
# What TLS and --redis-wait-replicas 1 cost, side by side in one run against the same servers: decisions/s and
# per-decision latency through toolgate's Redis store (in process, no HTTP, 1,000 subjects, every call allowed),
# plaintext and TLS (one redis-server listening on both, certificates made here by openssl), each without and with
# WAIT 1 (one replica, --replicaof). Loopback is the best case for WAIT: on a network each WAIT adds one
# master-to-replica round trip to every decision that consumed.
# Usage: bash benchmarks/redis-tls.sh [seconds per row, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate-bench >&2
bench="$(swift build -c "${BENCH_CONFIGURATION:-release}" --show-bin-path)/toolgate-bench"

work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

# A CA and a server certificate for 127.0.0.1, as a managed service's would be (RSA 2048, SHA-256).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=toolgate bench CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null

master=$(free_port)
master_tls=$(free_port)
replica=$(free_port)
mkdir -p "$work/master" "$work/replica"
redis-server --port "$master" --tls-port "$master_tls" --bind 127.0.0.1 --save '' --appendonly no \
  --tls-cert-file "$work/server.pem" --tls-key-file "$work/server.key" --tls-ca-cert-file "$work/ca.pem" \
  --tls-auth-clients no --dir "$work/master" --daemonize no --maxmemory-policy noeviction \
  --repl-diskless-sync-delay 0 --loglevel warning >"$work/master.log" 2>&1 &
pids+=($!)
redis-server --port "$replica" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/replica" --daemonize no \
  --replicaof 127.0.0.1 "$master" --loglevel warning >"$work/replica.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ "$(redis-cli -p "$master" wait 1 100 2>/dev/null)" = "1" ] && break; sleep 0.1; done
[ "$(redis-cli -p "$master" wait 1 100)" = "1" ] || { echo "the replica did not sync" >&2; cat "$work"/*.log >&2; exit 1; }

# The four settings one after the other against the same two servers; run the script twice to see the drift.
"$bench" redis "$master" "$seconds" 1 16 64
TOOLGATE_BENCH_TLS_CA="$work/ca.pem" "$bench" redis "$master_tls" "$seconds" 1 16 64 | tail -n +3
TOOLGATE_BENCH_WAIT_REPLICAS=1 "$bench" redis "$master" "$seconds" 1 16 64 | tail -n +3
TOOLGATE_BENCH_WAIT_REPLICAS=1 TOOLGATE_BENCH_TLS_CA="$work/ca.pem" "$bench" redis "$master_tls" "$seconds" 1 16 64 \
  | tail -n +3
