-- Release a JobQueue's claim on its stream (the JobQueue is deleted, or names another stream).
-- KEYS[1] owner hash
-- ARGV[1] the JobQueue (namespace/name)
-- Returns 1 when the claim was its and is gone, 0 when it held none.
if redis.call('HGET', KEYS[1], 'queue') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
