#!/usr/bin/env bash
# Issue 15, item 6: a soak. For N minutes (default 10) toolgate (release build, Redis store) takes mixed load:
# - wrk at 8 connections cycling through an allowed call, a call denied by the policy, a tool the policy does not
#   know, a rate-limited tool (10 a minute, then refused), invalid arguments and tools/list; every answer is an
#   event stream (example-upstream's /bench/sse: two 4 KiB events and the result);
# - 20 clients a second that ask for a stream held for 5 s and leave after its first event;
# - the policy rewritten once a minute (a third of a run shorter than 3 minutes: a reload through the file watcher);
# - Redis killed at half time and started again 5 s later with an empty dataset.
# Every 10 s (5 s in a run under a minute) it samples toolgate's RSS (and its anonymous part) and open file descriptors; at the end it prints
# the samples and the change from the end of warm-up (first 2 minutes, or a fifth of a short run) to the end.
# Usage: bash benchmarks/soak.sh [minutes, default 10; a fraction is allowed: 0.5 is what run.sh --quick uses]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
source benchmarks/lib.sh
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
reload_every=$(( seconds < 180 ? seconds / 3 : 60 ))

redis_port=$(free_port)
redis() { redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --maxmemory-policy noeviction --loglevel warning >>"$work/redis.log" 2>&1 & redis_pid=$!; pids+=($redis_pid); }
redis
upstream_port=$(free_port)
"$bin/example-upstream" "$upstream_port" >"$work/upstream.log" 2>&1 &
pids+=($!)
wait_port "$upstream_port"
policy() {  # $1: the generation, so each rewrite changes the file
  cat >"$work/policy.json" <<JSON
{"version":"1","default":"deny","description":"soak generation $1","tools":{
  "echo":{"limits":[{"counter":"soak_echo","window":"minute","max":2000000000,"scope":"grant"}]},
  "shell_exec":{"action":"deny","reason":"no shell"},
  "imageBackgroundRemoval":{"arguments":[{"path":"width","op":"lte","value":4096}],
    "limits":[{"counter":"soak_ibr","window":"minute","max":10,"scope":"grant"}]}}}
JSON
}
policy 0
toolgate_port=$(free_port)
"$bin/toolgate" serve --policy "$work/policy.json" --redis "redis://127.0.0.1:$redis_port" \
  --upstream "http://127.0.0.1:$upstream_port/bench/sse?bytes=8192&event=4096" \
  --listen "127.0.0.1:$toolgate_port" --log-level warning >"$work/toolgate.log" 2>&1 &
toolgate_pid=$!
pids+=($toolgate_pid)
wait_http "http://127.0.0.1:$toolgate_port/healthz"

wrk -t1 -c8 -d"${seconds}s" -s benchmarks/wrk-mixed.lua "http://127.0.0.1:$toolgate_port/mcp" >"$work/wrk.txt" 2>&1 &
pids+=($!)
python3 - "$toolgate_port" "$seconds" >"$work/leavers.txt" 2>&1 <<'PY' &
import asyncio, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
body = b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"text":"leave","holdMs":5000}}}'
request = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
left = failed = 0
async def leave():
    global left, failed
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        writer.write(request)
        await asyncio.wait_for(reader.readuntil(b"notifications/message"), 10)
        writer.close()  # mid-stream: the upstream is still holding it
        left += 1
    except Exception:
        failed += 1
async def main():
    end = time.monotonic() + seconds
    tasks = set()
    while time.monotonic() < end:
        task = asyncio.create_task(leave())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)
    print(f"left mid-stream: {left}, could not start: {failed}")
asyncio.run(main())
PY
pids+=($!)

sample() { awk -v t="$1" '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} END {printf "%d %.1f %.1f", t, r / 1024, a / 1024}' \
  "/proc/$toolgate_pid/status"; echo " $(ls "/proc/$toolgate_pid/fd" | wc -l)"; }
start=$(date +%s)
: >"$work/samples"
generation=0
restarted=false
while :; do
  elapsed=$(( $(date +%s) - start ))
  [ "$elapsed" -ge "$seconds" ] && break
  sample "$elapsed" >>"$work/samples"
  if [ $((elapsed / reload_every)) -gt "$generation" ]; then generation=$((elapsed / reload_every)); policy "$generation"; fi
  if ! $restarted && [ "$elapsed" -ge $((seconds / 2)) ]; then
    kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
    sleep 5
    redis
    restarted=true
  fi
  sleep $(( seconds < 60 ? 5 : 10 ))
done
wait_http "http://127.0.0.1:$toolgate_port/healthz"
sleep 6  # the last held streams end upstream
sample "$seconds+6" >>"$work/samples"

echo "| seconds | RSS MiB | anonymous MiB | open descriptors |"
echo "|---:|---:|---:|---:|"
awk '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}' "$work/samples"
warm=$(( seconds / 5 < 120 ? seconds / 5 : 120 ))
awk -v w="$warm" '$1 + 0 >= w && !seen {r = $2; a = $3; f = $4; seen = 1} {lr = $2; la = $3; lf = $4} END {
  printf "\nafter warm-up (%d s) to the end: RSS %+.1f MiB, anonymous %+.1f MiB, descriptors %+d\n", w, lr - r, la - a, lf - f }' "$work/samples"
grep RESULT "$work/wrk.txt" || { echo "wrk failed:"; cat "$work/wrk.txt"; exit 1; }
cat "$work/leavers.txt"
metrics=$(curl -fs "http://127.0.0.1:$toolgate_port/metrics")
echo "$metrics" | grep -E '^toolgate_tool_calls_total|^toolgate_policy_reloads_total|^toolgate_store_operations_total' | sort
kill -0 "$toolgate_pid" || { echo "toolgate died" >&2; exit 1; }
