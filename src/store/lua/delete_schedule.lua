-- Deletes a schedule and its place in the due index.
-- KEYS: 1 schedules hash, 2 due zset   ARGV: 1 id
-- Returns 1 when deleted, 0 when there was none.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
