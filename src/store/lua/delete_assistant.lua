-- Deletes an assistant and its name, unless callouts are calling with it: the
-- in-use check and the deletion are one step (see use_assistant.lua).
-- KEYS: 1 assistants hash, 2 names hash, 3 the assistant's set of calling callouts
-- ARGV: 1 id
-- Returns 1 when deleted, 0 when there was none, -n when n callouts use it.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return 0
end
local users = redis.call('SCARD', KEYS[3])
if users > 0 then
  return -users
end
local name = cjson.decode(old)['name']
if name and redis.call('HGET', KEYS[2], name) == ARGV[1] then
  redis.call('HDEL', KEYS[2], name)
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
