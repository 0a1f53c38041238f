-- Replaces an assistant if it is still the version the caller read (its
-- `updated_at`, which every write moves forward), keeping names unique.
-- KEYS: 1 assistants hash, 2 names hash
-- ARGV: 1 id, 2 new name, 3 new JSON, 4 expected updated_at (ms)
-- Returns 1 when replaced, 0 when another assistant has the name, 2 when the
-- stored assistant changed since it was read, 3 when there is none.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return 3
end
-- A re-sent replacement that already landed (a dropped connection, a failover).
if old == ARGV[3] then
  return 1
end
local doc = cjson.decode(old)
-- Milliseconds since 1970 fit a double exactly: compare as numbers.
if tonumber(doc['updated_at']) ~= tonumber(ARGV[4]) then
  return 2
end
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if owner and owner ~= ARGV[1] then
  return 0
end
local old_name = doc['name']
if old_name and old_name ~= ARGV[2] and redis.call('HGET', KEYS[2], old_name) == ARGV[1] then
  redis.call('HDEL', KEYS[2], old_name)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
