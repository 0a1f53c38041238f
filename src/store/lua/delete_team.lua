-- Deletes a team and frees its name. Callouts hold a copy of its contacts, so
-- no callout depends on it.
-- KEYS: 1 teams hash, 2 names hash   ARGV: 1 id
-- Returns 1 when deleted, 0 when there was none.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return 0
end
local name = cjson.decode(old)['name']
if name and redis.call('HGET', KEYS[2], name) == ARGV[1] then
  redis.call('HDEL', KEYS[2], name)
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
