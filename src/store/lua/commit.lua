-- Atomically writes a new version of a callout, appends its new timeline events
-- and updates its shard's indexes. Compare-and-set: nothing is written unless the
-- stored version is ARGV[2] ("0" when creating), so two replicas applying two
-- webhooks of the same callout can never both advance it from the same version.
--
-- KEYS: 1 doc, 2 events, 3 timers, 4 live, 5 all, 6-10 st:calling|accepted|exhausted|cancelled|failed
-- ARGV: 1 id, 2 expected version, 3 doc JSON, 4 status, 5 created (ms), 6 next due (ms or ""),
--       7 live call deadline (ms or ""), 8 ttl (ms or ""), 9 assistant id (or ""; unused here: which
--       callouts use an assistant is kept in its own slot, see use_assistant.lua), 10 writer token,
--       11.. event JSON, in order
-- Returns {1, new version}, or {0, current version, its writer token}: a client
-- that re-sends a write which did land (after a dropped connection or a failover)
-- finds its own token and knows the write is done, not lost to a conflict.
local cur = redis.call('HGET', KEYS[1], 'v')
if not cur then cur = '0' end
if cur ~= ARGV[2] then
  return {0, cur, redis.call('HGET', KEYS[1], 'w') or ''}
end
local newv = tostring(tonumber(cur) + 1)
local id = ARGV[1]
local old_status = redis.call('HGET', KEYS[1], 's')
redis.call('HSET', KEYS[1], 'v', newv, 'd', ARGV[3], 's', ARGV[4], 'w', ARGV[10])
for i = 11, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
if ARGV[6] == '' then redis.call('ZREM', KEYS[3], id) else redis.call('ZADD', KEYS[3], ARGV[6], id) end
if ARGV[7] == '' then redis.call('ZREM', KEYS[4], id) else redis.call('ZADD', KEYS[4], ARGV[7], id) end
if old_status ~= ARGV[4] then
  local statuses = {'calling', 'accepted', 'exhausted', 'cancelled', 'failed'}
  if not old_status then
    redis.call('ZADD', KEYS[5], ARGV[5], id)
  end
  for i, s in ipairs(statuses) do
    if s == old_status then redis.call('ZREM', KEYS[5 + i], id) end
    if s == ARGV[4] then redis.call('ZADD', KEYS[5 + i], ARGV[5], id) end
  end
end
if ARGV[8] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
return {1, newv}
