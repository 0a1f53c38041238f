-- Saves a schedule and its place in the due index, in one step.
-- KEYS: 1 schedules hash, 2 due zset
-- ARGV: 1 id, 2 JSON, 3 expected updated_at (ms; empty: create, must not exist),
--       4 due (ms; empty: not due, paused or finished)
-- Returns 1 when saved, 2 when the stored schedule changed since it was read
-- (or exists, on a create), 3 when there is none to replace.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == '' then
  if old then
    return 2
  end
else
  if not old then
    return 3
  end
  -- A re-sent save that already landed (a dropped connection, a failover).
  if old ~= ARGV[2] and tonumber(cjson.decode(old)['updated_at']) ~= tonumber(ARGV[3]) then
    return 2
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return 1
