-- What is in flight on every adopted Celery queue of this Redis, read once: kombu keeps the
-- unacknowledged messages of all queues in one hash.
-- KEYS[1] unacked   hash delivery tag -> JSON [message, exchange, routing key]
-- ARGV the queue names
-- Returns the count of unacknowledged messages per queue, in ARGV's order. A message is a
-- queue's when it was routed to it (routing key, or exchange, = the queue name: kombu's
-- default routing).
local index, counts = {}, {}
for i, q in ipairs(ARGV) do
  index[q] = i
  counts[i] = 0
end
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local ok, m = pcall(cjson.decode, v)
  if ok and type(m) == 'table' then
    local i = index[m[3]] or index[m[2]]
    if i then counts[i] = counts[i] + 1 end
  end
end
return counts
