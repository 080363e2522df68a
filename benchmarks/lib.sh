# Shared by the benchmarks that put toolgate between wrk and example-upstream (proxy.sh, cpu-per-call.sh, peer.sh):
# source it from the repository root. It installs what they need, builds the release binaries, sets `bin` and
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
