-- benchmarks/soak.sh's steady load: tools/call requests that take every path through the policy in turn
-- (allowed, denied by action, unknown to the policy, rate-limited once its small limit is used up, invalid
-- arguments, a list).
local calls = {
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"soak"}}}',
  '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"shell_exec","arguments":{"command":"ls"}}}',
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"not_in_policy","arguments":{}}}',
  '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"imageBackgroundRemoval","arguments":{"image":"a.png","width":100}}}',
  '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"imageBackgroundRemoval","arguments":{"image":"a.png","width":99999}}}',
  '{"jsonrpc":"2.0","id":6,"method":"tools/list"}',
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream"},
    calls[(i % #calls) + 1])
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d seconds=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, errors, summary.errors.status))
end
