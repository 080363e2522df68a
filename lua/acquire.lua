-- acquire.lua: check and consume every limit of one tools/call, all or nothing.
--
-- KEYS[1..n]  the counters, one per limit: <prefix>:{<scope>:<subject>}:<counter>
-- ARGV[1]     the call id (the sliding log's member is "<call id>:<cost>")
-- ARGV[2]     n, the number of limits
-- ARGV[3..]   five per limit, in KEYS order: algorithm ("sliding" | "fixed" | "token_bucket"),
--             window in whole seconds, max, cost (an integer 0..max), shadow ("1" or "0")
--
-- Returns {admitted, now, then eight per limit: passed, remaining, retry, r1, r2, r3, r4, life}:
--   admitted   1 when every non-shadow limit passed, and so everything that passed was consumed; else 0
--   now        the decision time, Redis TIME in epoch microseconds
--   passed     1 or 0; remaining: cost units left after the decision; retry: microseconds until a call of
--              the same cost would pass if nothing else competes (0 when it passed)
--   r1..r4     the receipt the sidecar keeps for a refund (refund.lua), when admitted: fixed: the window
--              index; token_bucket: TAT after the call (whole µs, fraction) and the bucket's refund total
--              at that moment (whole µs, fraction); otherwise 0
--   life       fixed and token_bucket: the id of the call that created this life of the counter, so a refund
--              never touches a counter that a reload restarted since; sliding: "" (its refund removes its own
--              member, which exists in no other life)
--
-- State, one key per counter, each tagged with its algorithm and window ("<algorithm>:<seconds>"); a key
-- with another tag or type is an old counter and starts fresh (deleted when this call writes):
--   sliding       sorted set: one member "<call id>:<cost>" per admitted call, scored by its time, plus one
--                 member "~<total>~<tag>" scored -1 holding the running total of the members' costs
--   fixed         hash a (tag), o (life), w (window index), n (cost used in it)
--   token_bucket  hash a (tag), o (life), t/f (TAT, fraction over d), d (max), s (when the bucket last started
--                 from empty), l (latest consumption), rw/rf (refunds since s)
--
-- Guarantees (DESIGN.md section 7; the same arithmetic as the embedded store, so both give equal answers):
--   sliding       never more than max cost in any interval (now - window, now], fleet-wide; a decision costs
--                 O(log n) plus the entries that expired since the last admitted call
--   fixed         at most max per UTC-aligned window (windows start at multiples of their length)
--   token_bucket  GCRA, burst max, rate max/window: admitted iff max(TAT, now) + cost*T - now <= window,
--                 with TAT kept exactly as whole microseconds plus a fraction over max
-- All or nothing: nothing is written unless every enforced limit passes, and a denied call writes nothing.
-- Only counters are written: no per-call key. Every key written gets a TTL, so idle counters vanish within
-- about two windows. Time comes from Redis, never from a host clock. Every number stays below 2^53, so
-- Lua's doubles compute exactly (and numbers are formatted with %d, never tostring, when put in strings).

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

local function entry_cost(member)
  return tonumber(string.match(member, ':(%d+)$'))
end

local function sliding_check(key, r)
  local top = redis.pcall('ZRANGE', key, 0, 0, 'WITHSCORES')
  local total = 0
  r.cutoff = now - r.w
  if top.err then
    r.stale = true
  elseif #top > 0 then
    local meta_total, meta_tag = string.match(top[1], '^~(%d+)~(.+)$')
    if meta_total == nil or meta_tag ~= r.tag or tonumber(top[2]) ~= -1 then
      r.stale = true
    else
      r.meta = top[1]
      total = tonumber(meta_total)
      local expired = redis.call('ZRANGEBYSCORE', key, 0, r.cutoff)
      for i = 1, #expired do total = total - entry_cost(expired[i]) end
      r.expired = #expired > 0
    end
  end
  r.total = total
  if total + r.cost <= r.max then return 1, r.max - total - r.cost, 0 end
  -- Denied: the call fits once enough of the oldest live cost has left the window. Every entry costs at
  -- least 1, so the first must_free live entries always suffice.
  local must_free = total + r.cost - r.max
  local live = redis.call('ZRANGEBYSCORE', key, string.format('(%d', r.cutoff), '+inf', 'WITHSCORES', 'LIMIT', 0, must_free)
  local freed = 0
  for i = 1, #live, 2 do
    freed = freed + entry_cost(live[i])
    if freed >= must_free then
      local retry = tonumber(live[i + 1]) + r.w - now
      if retry < 1 then retry = 1 end
      return 0, r.max - total, retry
    end
  end
  return 0, r.max - total, r.w
end

local function fixed_check(key, r)
  r.index = math.floor(now / r.w)
  local stored = redis.pcall('HMGET', key, 'a', 'w', 'n', 'o')
  r.used = 0
  if stored.err or stored[1] ~= r.tag then
    r.stale = stored.err or stored[1] ~= false
  else
    r.life = stored[4]
    if tonumber(stored[2]) == r.index then r.used = tonumber(stored[3]) end
  end
  if r.used + r.cost <= r.max then return 1, r.max - r.used - r.cost, 0 end
  return 0, r.max - r.used, (r.index + 1) * r.w - now
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

local function bucket_check(key, r)
  local max = r.max
  local stored = redis.pcall('HMGET', key, 'a', 't', 'f', 'd', 's', 'rw', 'rf', 'o')
  local tat, frac
  r.since, r.rw, r.rf = now, 0, 0
  if stored.err or stored[1] ~= r.tag then
    r.stale = stored.err or stored[1] ~= false
  else
    r.life = stored[8]
    tat, frac = tonumber(stored[2]), tonumber(stored[3])
    r.since, r.rw, r.rf = tonumber(stored[5]), tonumber(stored[6]), tonumber(stored[7])
    if tonumber(stored[4]) ~= max then
      -- The limit's max changed: round the old fraction up, which never admits more than before; earlier
      -- receipts were in the old units, so they refund nothing from here on.
      if frac > 0 then tat = tat + 1 end
      frac = 0
      r.since, r.rw, r.rf = now, 0, 0
    end
  end
  -- max(TAT, now); an empty bucket starts a new epoch.
  local start_whole, start_frac = now, 0
  if tat ~= nil and (tat > now or (tat == now and frac > 0)) then
    start_whole, start_frac = tat, frac
  else
    r.fresh_epoch = true
  end
  local inc_whole, inc_frac = increment(r.cost, r.window_seconds, max)
  local new_whole, new_frac = start_whole + inc_whole, start_frac + inc_frac
  if new_frac >= max then new_frac = new_frac - max; new_whole = new_whole + 1 end
  local ahead = new_whole - now
  if ahead < r.w or (ahead == r.w and new_frac == 0) then
    r.tat, r.frac = new_whole, new_frac
    return 1, bucket_remaining(ahead, new_frac, r.w, max), 0
  end
  local retry = new_whole - r.w - now
  if new_frac > 0 then retry = retry + 1 end
  return 0, bucket_remaining(start_whole - now, start_frac, r.w, max), retry
end

-- Check everything first: nothing is written unless the call is admitted.
local results = {}
local admitted = 1
for i = 1, n do
  local base = 3 + (i - 1) * 5
  local r = { algorithm = ARGV[base], window_seconds = tonumber(ARGV[base + 1]), max = tonumber(ARGV[base + 2]),
              cost = tonumber(ARGV[base + 3]), r1 = 0, r2 = 0, r3 = 0, r4 = 0 }
  local shadow = ARGV[base + 4] == '1'
  r.w = r.window_seconds * 1000000
  r.tag = r.algorithm .. ':' .. ARGV[base + 1]
  if r.algorithm == 'sliding' then
    r.passed, r.remaining, r.retry = sliding_check(KEYS[i], r)
  elseif r.algorithm == 'fixed' then
    r.passed, r.remaining, r.retry = fixed_check(KEYS[i], r)
  elseif r.algorithm == 'token_bucket' then
    r.passed, r.remaining, r.retry = bucket_check(KEYS[i], r)
  else
    return redis.error_reply('unknown algorithm ' .. tostring(r.algorithm))
  end
  if r.passed == 0 and not shadow then admitted = 0 end
  results[i] = r
end

-- Consume every limit that passed (shadow ones too).
if admitted == 1 then
  for i = 1, n do
    local r, key = results[i], KEYS[i]
    if r.passed == 1 and r.cost > 0 then
      local window_ms = r.window_seconds * 1000
      if r.stale then redis.call('DEL', key) end
      if r.algorithm == 'sliding' then
        if r.expired then redis.call('ZREMRANGEBYSCORE', key, 0, r.cutoff) end
        if r.meta then redis.call('ZREM', key, r.meta) end
        redis.call('ZADD', key, -1, '~' .. (r.total + r.cost) .. '~' .. r.tag, now, call_id .. ':' .. r.cost)
        redis.call('PEXPIRE', key, window_ms)
      elseif r.algorithm == 'fixed' then
        if not r.life then r.life = call_id end
        redis.call('HSET', key, 'a', r.tag, 'o', r.life, 'w', r.index, 'n', r.used + r.cost)
        redis.call('PEXPIREAT', key, (r.index + 2) * window_ms)
        r.r1 = r.index
      else
        if r.fresh_epoch then r.since, r.rw, r.rf = now, 0, 0 end
        if not r.life then r.life = call_id end
        redis.call('HSET', key, 'a', r.tag, 'o', r.life, 't', r.tat, 'f', r.frac, 'd', r.max, 's', r.since, 'l', now,
          'rw', r.rw, 'rf', r.rf)
        redis.call('PEXPIREAT', key, math.floor(r.tat / 1000) + 1)
        r.r1, r.r2, r.r3, r.r4 = r.tat, r.frac, r.rw, r.rf
      end
    end
  end
end

local reply = { admitted, now }
for i = 1, n do
  local r = results[i]
  for _, v in ipairs({ r.passed, r.remaining, r.retry, r.r1, r.r2, r.r3, r.r4 }) do reply[#reply + 1] = v end
  if admitted == 1 and r.passed == 1 and r.cost > 0 and r.algorithm ~= 'sliding' then
    reply[#reply + 1] = r.life
  else
    reply[#reply + 1] = ''
  end
end
return reply
