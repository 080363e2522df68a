-- approval_start.lua: a call needs a human's approval; find the approval for it, or open the request.
--
-- KEYS[1]   the approval record: <prefix>:{approvals:_}:<binding key>, a hash
-- KEYS[2]   the index of live approvals: <prefix>:{approvals:_}:index, a sorted set of binding keys by expiry (ms)
-- KEYS[3]   the grant's open requests: <prefix>:{approvals:_}:pending:<grant hash>, binding keys by expiry (ms)
-- ARGV[1]   the id for a new request (<binding key>-<16 hex>)
-- ARGV[2]   the binding key
-- ARGV[3]   lifetime of a new request, ms
-- ARGV[4..7] grant, tool, canonical arguments, policy SHA-256 (kept for the approver to see)
-- ARGV[8]   the most requests the grant may have open, or 0 to only look (never create)
-- ARGV[9]   the named server the tool is on, or "" for the one unnamed upstream (kept for the approver to see)
--
-- Returns {status, id, state, created ms, expires ms}: status "approved" (a human approved this binding and the
-- approval is unused; approval_consume.lua uses it once the call's limits admit it), "pending" (a request is open,
-- found or created now), "denied", "absent" (only looking, and nothing is recorded) or "too_many" (the grant has
-- ARGV[8] requests open: none was created); id, state and times are empty or 0 for the last two.
--
-- Guarantees: nothing is used up here; a grant never has more than ARGV[8] requests open (a request stops counting
-- when it is decided or expires); a request lives at most its lifetime, and an approval given but never used
-- expires with it; a denial stands until it expires. Time is Redis TIME. Every key is declared, and all share the
-- {approvals:_} slot.

local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local record, index, open = KEYS[1], KEYS[2], KEYS[3]
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
redis.call('ZREMRANGEBYSCORE', open, '-inf', now)

local found = redis.call('HMGET', record, 'id', 'state', 'created', 'expires')
if found[1] then
  return {found[2], found[1], found[2], tonumber(found[3]), tonumber(found[4])}
end

local max_open = tonumber(ARGV[8])
if max_open == 0 then return {'absent', '', '', 0, 0} end
if redis.call('ZCARD', open) >= max_open then return {'too_many', '', '', 0, 0} end

local ttl = tonumber(ARGV[3])
local expires = now + ttl
redis.call('HSET', record, 'id', ARGV[1], 'state', 'pending', 'created', now, 'expires', expires,
  'grant', ARGV[4], 'tool', ARGV[5], 'arguments', ARGV[6], 'policy', ARGV[7], 'server', ARGV[9] or '')
redis.call('PEXPIRE', record, ttl)
redis.call('ZADD', index, expires, ARGV[2])
redis.call('ZADD', open, expires, ARGV[2])
-- The sets live as long as their longest-lived entry.
if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
if redis.call('PTTL', open) < ttl then redis.call('PEXPIRE', open, ttl) end
return {'pending', ARGV[1], 'pending', now, expires}
