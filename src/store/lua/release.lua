-- Puts a claimed timer back at the callout's real next due time, but only if the
-- callout is still at the version the timer loop looked at (otherwise the writer
-- of the newer version already set the timer).
-- KEYS: 1 doc, 2 timers   ARGV: 1 id, 2 version, 3 next due (ms or "")
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[2] then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return 1
