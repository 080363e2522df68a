-- refund.lua: give back what one admitted call consumed, from the receipt acquire.lua returned. Idempotent.
--
-- KEYS[1]       the refund marker: <prefix>:{<scope>:<subject>}:refund:<call id>, in the first counter's slot
-- KEYS[2..n+1]  the counters the call consumed
-- ARGV[1]       the call id
-- ARGV[2]       n
-- ARGV[3]       the marker's lifetime in ms (the longest window: after it no refund can matter)
-- ARGV[4]       the decision time of the call, epoch µs (acquire.lua's now)
-- ARGV[5..]     nine per counter, in KEYS order: algorithm, window in seconds, max, cost, r1, r2, r3, r4, life
--               (the receipt from acquire.lua)
--
-- Returns 1 when the refund was applied, 0 when this call was already refunded.
--
-- Guarantees: a refund never admits more than a run in which the refunded call never happened and every
-- other admitted call still did. sliding: the call's member leaves the log (if still there). fixed: the cost
-- comes back if the charged window is still current. token_bucket: TAT drops by min(increment, TAT_after -
-- refunds since - latest consumption), and by nothing if the bucket ran empty since the call or its max
-- changed (see GCRABucket.refund). A counter in another life than the call's (its algorithm or window changed,
-- perhaps and back again, or it expired and was created anew) is left alone. The marker is written only when refunding, and lives only as long as the longest window.

if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
local call_id, n, decided = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])

-- Exact times: whole µs plus a fraction over m, 0 <= fraction < m.
local function sub(aw, af, bw, bf, m)
  local w, f = aw - bw, af - bf
  if f < 0 then f = f + m; w = w - 1 end
  return w, f
end
local function less(aw, af, bw, bf) return aw < bw or (aw == bw and af < bf) end

local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then q = q - 1; r = r + b elseif r >= b then q = q + 1; r = r - b end
  return q, r
end

for i = 1, n do
  local base = 5 + (i - 1) * 9
  local key = KEYS[i + 1]
  local algorithm, window_seconds = ARGV[base], tonumber(ARGV[base + 1])
  local max, cost = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local r1, r2, r3, r4 = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6]), tonumber(ARGV[base + 7])
  local tag, life = algorithm .. ':' .. ARGV[base + 1], ARGV[base + 8]
  if algorithm == 'sliding' then
    local top = redis.pcall('ZRANGE', key, 0, 0)
    local meta_total, meta_tag
    if not top.err and #top > 0 then meta_total, meta_tag = string.match(top[1], '^~(%d+)~(.+)$') end
    if meta_tag == tag and redis.call('ZREM', key, call_id .. ':' .. cost) == 1 then
      redis.call('ZREM', key, top[1])
      redis.call('ZADD', key, -1, '~' .. (tonumber(meta_total) - cost) .. '~' .. tag)
    end
  elseif algorithm == 'fixed' then
    local stored = redis.pcall('HMGET', key, 'a', 'w', 'n', 'o')
    if not stored.err and stored[1] == tag and stored[4] == life and tonumber(stored[2]) == r1 then
      local left = tonumber(stored[3]) - cost
      if left < 0 then left = 0 end
      redis.call('HSET', key, 'n', left)
    end
  elseif algorithm == 'token_bucket' then
    local s = redis.pcall('HMGET', key, 'a', 't', 'f', 'd', 's', 'l', 'rw', 'rf', 'o')
    if not s.err and s[1] == tag and s[9] == life and tonumber(s[4]) == max then
      local tat, frac, since, last = tonumber(s[2]), tonumber(s[3]), tonumber(s[5]), tonumber(s[6])
      local rw, rf = tonumber(s[7]), tonumber(s[8])
      if since <= decided and last >= decided and not less(rw, rf, r3, r4) then
        -- bound = TAT_after - (refunds since the call) - last
        local dw, df = sub(rw, rf, r3, r4, max)
        local bw, bf = sub(r1, r2, dw, df, max)
        bw, bf = sub(bw, bf, last, 0, max)
        local q1, m1 = divmod(cost * window_seconds, max)
        local q2, m2 = divmod(m1 * 1000000, max)
        local iw, iff = q1 * 1000000 + q2, m2
        if less(bw, bf, iw, iff) then iw, iff = bw, bf end
        if less(0, 0, iw, iff) then
          tat, frac = sub(tat, frac, iw, iff, max)
          rw, rf = rw + iw, rf + iff
          if rf >= max then rf = rf - max; rw = rw + 1 end
          redis.call('HSET', key, 't', tat, 'f', frac, 'rw', rw, 'rf', rf)
        end
      end
    end
  end
end
return 1
