-- refund.lua: undo what one call consumed, by its call id. Idempotent.
--
-- KEYS[1]  the call's refund record: <prefix>:call:<call id>, written by acquire.lua as groups of five
--          list items: algorithm, counter key, then (sliding) member, 0, 0 | (fixed) window index, cost, 0 |
--          (token_bucket) increment whole µs, increment fraction, max
-- ARGV     none
--
-- Returns 1 when something was refunded, 0 when the record is gone (never consumed, already refunded, or
-- expired because its windows have passed, when a refund could no longer matter).
--
-- Guarantee: the record is deleted in the same atomic step that applies it, so a double refund cannot give
-- back more than was taken. The counters named in the record are touched by name: this wave targets
-- standalone Redis (DESIGN.md section 7); Redis Cluster will need the keys declared.

local items = redis.call('LRANGE', KEYS[1], 0, -1)
if #items == 0 then return 0 end
redis.call('DEL', KEYS[1])
for i = 1, #items, 5 do
  local algorithm, key, a, b, c = items[i], items[i + 1], items[i + 2], items[i + 3], items[i + 4]
  if algorithm == 'sliding' then
    redis.call('ZREM', key, a)
  elseif algorithm == 'fixed' then
    local stored = redis.call('HMGET', key, 'w', 'n')
    if stored[1] == a then
      local left = tonumber(stored[2]) - tonumber(b)
      if left < 0 then left = 0 end
      redis.call('HSET', key, 'n', left)
    end
  elseif algorithm == 'token_bucket' then
    local stored = redis.call('HMGET', key, 't', 'f', 'd')
    if stored[1] then
      local tat, frac = tonumber(stored[1]) - tonumber(a), tonumber(stored[2])
      if stored[3] == c then
        frac = frac - tonumber(b)
        if frac < 0 then frac = frac + tonumber(c); tat = tat - 1 end
      end
      redis.call('HSET', key, 't', tat, 'f', frac)
    end
  end
end
return 1
