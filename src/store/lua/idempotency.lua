-- Claims an Idempotency-Key for a request, unless a request already holds it.
-- KEYS: 1 the key's record   ARGV: 1 record JSON (the request's digest, no answer yet), 2 ttl (ms)
-- Returns the record already stored, or false when this request claimed the key.
local cur = redis.call('GET', KEYS[1])
if cur then
  return cur
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
