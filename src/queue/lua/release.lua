-- Release a JobQueue's claims on its stream and its dead-letter stream (the JobQueue is
-- deleted, or names another stream).
-- KEYS the owner hashes
-- ARGV[1] the JobQueue (namespace/name)
-- Returns how many claims were its and are gone.
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'queue') == ARGV[1] then
    released = released + redis.call('DEL', key)
  end
end
return released
