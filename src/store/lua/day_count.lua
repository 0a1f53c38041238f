-- Counts one more call placed today, across all replicas.
-- KEYS: 1 today's counter   ARGV: 1 ttl (ms)
-- Returns the count including this call.
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
