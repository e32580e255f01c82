-- A Celery queue's numbers (Redis broker, kombu), read only.
-- KEYS[1] <q>                    list of waiting messages (priority 0)
-- KEYS[2..4] <q>\x06\x16{3,6,9}  the priority lists kombu adds for priorities 3, 6 and 9
-- KEYS[5] unacked                hash delivery tag -> JSON [message, exchange, routing key]
-- ARGV[1] the queue name
-- Returns {now ms, queued, in flight, delayed, failed, {}}: Celery keeps no record of which
-- worker holds a message, nor of failed tasks, in the broker.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local queued = 0
for i = 1, 4 do queued = queued + redis.call('LLEN', KEYS[i]) end
-- Unacknowledged messages of every queue share one hash; a message is this queue's when it
-- was routed to it (exchange or routing key = the queue name, kombu's default routing).
local in_flight = 0
for _, v in ipairs(redis.call('HVALS', KEYS[5])) do
  local ok, m = pcall(cjson.decode, v)
  if ok and type(m) == 'table' and (m[3] == ARGV[1] or m[2] == ARGV[1]) then
    in_flight = in_flight + 1
  end
end
return { now_ms, queued, in_flight, 0, 0, {} }
