-- acquire.lua: check and consume every limit of one tools/call, all or nothing.
--
-- KEYS[1..n]  the counters, one per limit: <prefix>:{<scope>:<subject>}:<counter>
-- KEYS[n+1]   the call's refund record: <prefix>:call:<call id>
-- ARGV[1]     the call id (the sliding log's member)
-- ARGV[2]     n, the number of limits
-- ARGV[3..]   five per limit, in KEYS order: algorithm ("sliding" | "fixed" | "token_bucket"),
--             window in whole seconds, max, cost (an integer 0..max), shadow ("1" or "0")
--
-- Returns {admitted, now, passed_1, remaining_1, retry_1, ..., passed_n, remaining_n, retry_n}:
--   admitted   1 when every non-shadow limit passed, and so everything that passed was consumed; else 0
--   now        the decision time, Redis TIME in epoch microseconds
--   passed_i   1 or 0; remaining_i: cost units left after the decision; retry_i: microseconds until a call
--              of the same cost would pass if nothing else competes (0 when it passed)
--
-- Guarantees (DESIGN.md section 7; the same arithmetic as the embedded store, so both give equal answers):
--   sliding       never more than max cost in any interval (now - window, now], fleet-wide
--   fixed         at most max per UTC-aligned window (windows start at multiples of their length)
--   token_bucket  GCRA, burst max, rate max/window: admitted iff max(TAT, now) + cost*T - now <= window,
--                 with TAT kept exactly as whole microseconds plus a fraction over max
-- All or nothing: nothing is written unless every enforced limit passes. Every key written gets a TTL,
-- so idle counters vanish within about two windows. Time comes from Redis, never from a host clock.
-- Every number stays below 2^53, so Lua's doubles compute exactly.

local n = tonumber(ARGV[2])
local call_id = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- Exact a = q*b + r for non-negative integers below 2^53, where a/b alone may round.
local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then q = q - 1; r = r + b elseif r >= b then q = q + 1; r = r - b end
  return q, r
end

local function sliding_check(key, w, max, cost)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - w)
  local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local total = 0
  for i = 1, #entries, 2 do
    total = total + tonumber(string.match(entries[i], ':(%d+)$'))
  end
  if total + cost <= max then return 1, max - total - cost, 0 end
  local must_free, freed = total + cost - max, 0
  for i = 1, #entries, 2 do
    freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
    if freed >= must_free then
      local retry = tonumber(entries[i + 1]) + w - now
      if retry < 1 then retry = 1 end
      return 0, max - total, retry
    end
  end
  return 0, max - total, w
end

local function fixed_check(key, w, max, cost)
  local index = math.floor(now / w)
  local stored = redis.call('HMGET', key, 'w', 'n')
  local used = 0
  if tonumber(stored[1]) == index then used = tonumber(stored[2]) end
  if used + cost <= max then return 1, max - used - cost, 0 end
  return 0, max - used, (index + 1) * w - now
end

-- The bucket's TAT as {whole, frac} with frac over max; an idle bucket starts at now.
local function bucket_start(key, max)
  local stored = redis.call('HMGET', key, 't', 'f', 'd')
  local tat, frac, d = tonumber(stored[1]), tonumber(stored[2]), tonumber(stored[3])
  if tat == nil then return now, 0 end
  if d ~= max then
    -- The limit's max changed: round the old fraction up, which never admits more than before.
    if frac > 0 then tat = tat + 1 end
    frac = 0
  end
  if tat > now or (tat == now and frac > 0) then return tat, frac end
  return now, 0
end

local function increment(cost, window_seconds, max)
  local q1, r1 = divmod(cost * window_seconds, max)
  local q2, r2 = divmod(r1 * 1000000, max)
  return q1 * 1000000 + q2, r2
end

local function bucket_remaining(ahead, frac, w, max)
  if ahead < 0 then ahead = 0 end
  local value = math.floor((w - (ahead + frac / max)) * max / w)
  if value < 0 then return 0 elseif value > max then return max end
  return value
end

local function bucket_check(key, window_seconds, w, max, cost)
  local start_whole, start_frac = bucket_start(key, max)
  local inc_whole, inc_frac = increment(cost, window_seconds, max)
  local new_whole, new_frac = start_whole + inc_whole, start_frac + inc_frac
  if new_frac >= max then new_frac = new_frac - max; new_whole = new_whole + 1 end
  local ahead = new_whole - now
  if ahead < w or (ahead == w and new_frac == 0) then
    return 1, bucket_remaining(ahead, new_frac, w, max), 0, new_whole, new_frac, inc_whole, inc_frac
  end
  local retry = new_whole - w - now
  if new_frac > 0 then retry = retry + 1 end
  return 0, bucket_remaining(start_whole - now, start_frac, w, max), retry
end

-- Check everything first: nothing is written unless the call is admitted.
local results = {}
local admitted = 1
for i = 1, n do
  local base = 3 + (i - 1) * 5
  local algorithm, window_seconds = ARGV[base], tonumber(ARGV[base + 1])
  local max, cost, shadow = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]), ARGV[base + 4] == '1'
  local w = window_seconds * 1000000
  local r = { algorithm = algorithm, window_seconds = window_seconds, w = w, max = max, cost = cost }
  if algorithm == 'sliding' then
    r.passed, r.remaining, r.retry = sliding_check(KEYS[i], w, max, cost)
  elseif algorithm == 'fixed' then
    r.passed, r.remaining, r.retry = fixed_check(KEYS[i], w, max, cost)
  elseif algorithm == 'token_bucket' then
    r.passed, r.remaining, r.retry, r.tat, r.frac, r.inc_whole, r.inc_frac = bucket_check(KEYS[i], window_seconds, w, max, cost)
  else
    return redis.error_reply('unknown algorithm ' .. tostring(algorithm))
  end
  if r.passed == 0 and not shadow then admitted = 0 end
  results[i] = r
end

local reply = { admitted, now }
for i = 1, n do
  reply[#reply + 1] = results[i].passed
  reply[#reply + 1] = results[i].remaining
  reply[#reply + 1] = results[i].retry
end
if admitted == 0 then return reply end

-- Consume every limit that passed (shadow ones too), and record what this call consumed for a refund.
local record_key = KEYS[n + 1]
local record_ttl_ms = 0
for i = 1, n do
  local r, key = results[i], KEYS[i]
  if r.passed == 1 and r.cost > 0 then
    local window_ms = r.window_seconds * 1000
    if r.algorithm == 'sliding' then
      redis.call('ZADD', key, now, call_id .. ':' .. r.cost)
      redis.call('PEXPIRE', key, window_ms)
      redis.call('RPUSH', record_key, 'sliding', key, call_id .. ':' .. r.cost, 0, 0)
    elseif r.algorithm == 'fixed' then
      local index = math.floor(now / r.w)
      local stored = redis.call('HMGET', key, 'w', 'n')
      local used = 0
      if tonumber(stored[1]) == index then used = tonumber(stored[2]) end
      redis.call('HSET', key, 'w', index, 'n', used + r.cost)
      redis.call('PEXPIREAT', key, (index + 2) * window_ms)
      redis.call('RPUSH', record_key, 'fixed', key, index, r.cost, 0)
    else
      redis.call('HSET', key, 't', r.tat, 'f', r.frac, 'd', r.max)
      redis.call('PEXPIREAT', key, math.floor(r.tat / 1000) + 1)
      redis.call('RPUSH', record_key, 'token_bucket', key, r.inc_whole, r.inc_frac, r.max)
    end
    if window_ms > record_ttl_ms then record_ttl_ms = window_ms end
  end
end
if record_ttl_ms > 0 then redis.call('PEXPIRE', record_key, record_ttl_ms) end
return reply
