-- Saves an assistant, keeping names unique (a rename frees the old name).
-- KEYS: 1 assistants hash, 2 names hash   ARGV: 1 id, 2 name, 3 JSON
-- Returns 1 when saved, 0 when another assistant has the name.
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if owner and owner ~= ARGV[1] then
  return 0
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local old_name = cjson.decode(old)['name']
  if old_name and old_name ~= ARGV[2] then
    redis.call('HDEL', KEYS[2], old_name)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
