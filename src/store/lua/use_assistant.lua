-- Records that a callout being created runs on an assistant, if the assistant
-- still exists. Same slot as the assistants hash and delete_assistant.lua, so a
-- deletion sees every callout that got past this script, and a creation after a
-- deletion is refused: no callout is left on a deleted assistant.
-- KEYS: 1 assistants hash, 2 the assistant's set of calling callouts
-- ARGV: 1 assistant id, 2 callout id
-- Returns 1 when recorded, 0 when the assistant does not exist.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
