-- Per-person call limits across callouts and replicas, on Redis's clock: the
-- rule of PersonLimits::next_allowed (src/domain/policy.rs). Records call
-- ARGV[1] when both windows have room; otherwise records nothing.
-- KEYS: 1 the number's recent calls (zset call id -> ms)
-- ARGV: 1 call id   2 calls per 15 min (0: no limit)   3 calls per hour (0: no limit)
-- Returns 0 (recorded now, or already recorded: a placement tried again) or the
-- milliseconds to wait before the call may be placed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hour = 3600000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - hour)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local wait = 0
local function window(limit, w)
  if limit == 0 then
    return
  end
  local inside = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - w), '+inf', 'WITHSCORES')
  local n = #inside / 2
  if n >= limit then
    -- the oldest calls that must leave the window so that it has room
    local leaves = tonumber(inside[(n - limit) * 2 + 2])
    wait = math.max(wait, leaves + w - now)
  end
end
window(tonumber(ARGV[2]), 900000)
window(tonumber(ARGV[3]), hour)
if wait > 0 then
  return wait
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], hour)
return 0
