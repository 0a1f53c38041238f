-- Takes or renews a named lock for ARGV[1] (the holder) for ARGV[2] ms.
-- KEYS: 1 lock   Returns 1 when the caller holds the lock.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
