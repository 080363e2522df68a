# Shared by the benchmarks that put toolgate between a load generator and example-upstream: source it from the
# repository root. It installs what they need, builds the release binaries, sets `bin` and
# `work` (a scratch folder), and stops every process added to `pids` on exit.
bash scripts/bootstrap.sh >/dev/null
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
swift build -c "${BENCH_CONFIGURATION:-release}" --product toolgate >&2
swift build -c "${BENCH_CONFIGURATION:-release}" --product example-upstream >&2
bin=$(swift build -c "${BENCH_CONFIGURATION:-release}" --show-bin-path)

work=$(mktemp -d)
pids=()
# SIGTERM first; whatever still runs a second later (an upstream waiting out a held stream in its graceful
# shutdown) is killed.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 10); do
    alive=false
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=true; done
    $alive || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on port $1" >&2; exit 1; }
wait_http() { for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# example-upstream, and toolgate in front of it with one limit on `echo` that is never reached (embedded store).
# $1: the upstream path toolgate forwards to (default /mcp). Sets upstream_port, upstream_pid, toolgate_port and
# toolgate_pid, and returns once toolgate answers /healthz.
start_upstream_and_toolgate() {
  upstream_port=$(free_port)
  "$bin/example-upstream" "$upstream_port" >"$work/upstream.log" 2>&1 &
  upstream_pid=$!
  pids+=("$upstream_pid")
  wait_port "$upstream_port"
  toolgate_port=$(free_port)
  cat >"$work/policy.json" <<'JSON'
{"version":"1","default":"deny","tools":{"echo":{"limits":[{"counter":"bench","window":"minute","max":2000000000,"scope":"grant"}]}}}
JSON
  "$bin/toolgate" serve --policy "$work/policy.json" --upstream "http://127.0.0.1:$upstream_port${1:-/mcp}" \
    --listen "127.0.0.1:$toolgate_port" --log-level warning >"$work/toolgate.log" 2>&1 &
  toolgate_pid=$!
  pids+=("$toolgate_pid")
  wait_http "http://127.0.0.1:$toolgate_port/healthz"
}

# wrk_row TARGET URL CONCURRENCY: `duration` seconds of wrk posting tools/call (benchmarks/wrk-tools-call.lua; the
# tool is $WRK_TOOL, default echo) to URL, printed as a Markdown row: target, concurrency, requests/s, p50, p99, errors.
wrk_row() {
  local line
  line=$(wrk -t"$(( $3 < 2 ? 1 : 2 ))" -c"$3" -d"${duration}s" --latency -s benchmarks/wrk-tools-call.lua "$2" | grep '^RESULT')
  eval "${line#RESULT }"
  printf '| %s | %d | %.0f | %d | %d | %d |\n' "$1" "$3" "$(awk -v r="$requests" -v s="$seconds" 'BEGIN { print r / s }')" "$p50_us" "$p99_us" "$errors"
}
