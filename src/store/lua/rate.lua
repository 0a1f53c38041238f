-- Shared outbound call rate limit (GCRA-style slot reservation) on Redis's clock,
-- so every replica draws from one budget. Reserves the next free slot and returns
-- how many milliseconds the caller must wait for it.
-- KEYS: 1 rate key   ARGV: 1 interval between calls (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(nxt, now)
redis.call('SET', KEYS[1], slot + interval, 'PX', (slot - now) + interval * 2 + 1000)
return slot - now
