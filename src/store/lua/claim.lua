-- Claims due timers of one shard: every member due at or before ARGV[1] is pushed
-- to ARGV[2] (a lease) in the same atomic step, so exactly one replica gets it.
-- If that replica dies, the lease expires and another replica claims it again.
-- KEYS: 1 timers   ARGV: 1 now (ms), 2 lease until (ms), 3 max members
-- Returns a flat list {id, due, id, due, ...}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], ARGV[2], due[i])
end
return due
