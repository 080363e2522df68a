-- approval_decide.lua: a human approves or denies one pending request, by its id.
--
-- KEYS[1]   the approval record: <prefix>:{approvals:_}:<binding key of the id>
-- KEYS[2]   the open requests of the record's grant: <prefix>:{approvals:_}:pending:<grant hash>
-- ARGV[1]   the id
-- ARGV[2]   "approved" or "denied"
-- ARGV[3]   the binding key of the id
--
-- Returns {status, state}: status "decided" (the state is now ARGV[2]), "already" (decided before: the state it
-- has) or "not_found" (no live request has this id: expired, used, or another request for the same binding).
--
-- Guarantees: a request is decided at most once; a decided request no longer counts against its grant's open
-- requests; a decision never extends its lifetime (the record keeps its TTL, so an approval never used expires with
-- the request). Every key is declared.

local found = redis.call('HMGET', KEYS[1], 'id', 'state')
if not found[1] or found[1] ~= ARGV[1] then return {'not_found', ''} end
if found[2] ~= 'pending' then return {'already', found[2]} end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
return {'decided', ARGV[2]}
