-- approval_start.lua: a call needs a human's approval; use an approval given for it, or find or open the request.
--
-- KEYS[1]   the approval record: <prefix>:{approvals:_}:<binding key>, a hash
-- KEYS[2]   the index of live approvals: <prefix>:{approvals:_}:index, a sorted set of binding keys by expiry (ms)
-- ARGV[1]   the id for a new request (<binding key>-<16 hex>)
-- ARGV[2]   the binding key
-- ARGV[3]   lifetime of a new request, ms
-- ARGV[4..7] grant, tool, canonical arguments, policy SHA-256 (kept for the approver to see)
--
-- Returns {status, id, state, created ms, expires ms}: status "consumed" (an approved approval was used up by
-- this call: the record is gone), "pending" (a request is open, found or created now) or "denied".
--
-- Guarantees: an approval is used at most once (the record is deleted as it is used, atomically with the check);
-- a request lives at most its lifetime, and an approval given but never used expires with it; a denial stands
-- until it expires. Time is Redis TIME. Every key is declared, and both share the {approvals:_} slot.

local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local record, index = KEYS[1], KEYS[2]
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)

local found = redis.call('HMGET', record, 'id', 'state', 'created', 'expires')
if found[1] then
  if found[2] == 'approved' then
    redis.call('DEL', record)
    redis.call('ZREM', index, ARGV[2])
    return {'consumed', found[1], 'approved', tonumber(found[3]), tonumber(found[4])}
  end
  return {found[2], found[1], found[2], tonumber(found[3]), tonumber(found[4])}
end

local ttl = tonumber(ARGV[3])
local expires = now + ttl
redis.call('HSET', record, 'id', ARGV[1], 'state', 'pending', 'created', now, 'expires', expires,
  'grant', ARGV[4], 'tool', ARGV[5], 'arguments', ARGV[6], 'policy', ARGV[7])
redis.call('PEXPIRE', record, ttl)
redis.call('ZADD', index, expires, ARGV[2])
-- The index lives as long as its longest-lived entry.
if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
return {'pending', ARGV[1], 'pending', now, expires}
