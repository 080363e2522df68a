-- approval_consume.lua: a call whose limits admitted it uses its approval.
--
-- KEYS[1]   the approval record: <prefix>:{approvals:_}:<binding key of the id>
-- KEYS[2]   the index of live approvals: <prefix>:{approvals:_}:index
-- ARGV[1]   the id
-- ARGV[2]   the binding key of the id
--
-- Returns 1 when the record was this id's approved, unused approval and is now gone (used by this call), else 0.
--
-- Guarantees: an approval is used at most once (the record is deleted as it is used, atomically with the check);
-- a pending or denied request is never used. Every key is declared.

local found = redis.call('HMGET', KEYS[1], 'id', 'state')
if not found[1] or found[1] ~= ARGV[1] or found[2] ~= 'approved' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
