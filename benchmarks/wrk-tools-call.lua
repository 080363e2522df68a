-- One tools/call per request, the shape an agent sends. Prints a machine-readable summary line.
wrk.method = "POST"
-- WRK_TOOL names the tool (default echo): the merged endpoint's benchmark calls beta__echo.
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. (os.getenv("WRK_TOOL") or "echo") .. '","arguments":{"text":"hi"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT requests=%d seconds=%.3f errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration / 1e6, errors, latency:percentile(50), latency:percentile(99)))
end
