-- A Celery queue's waiting messages (Redis broker, kombu), read only.
-- KEYS[1] <q>                    list of waiting messages (priority 0)
-- KEYS[2..4] <q>\x06\x16{3,6,9}  the priority lists kombu adds for priorities 3, 6 and 9
-- Returns {now ms, queued, 0, 0, 0, {}}: what is in flight comes from the shared reading of
-- kombu's `unacked` hash (celery_shared.lua); Celery keeps no failed tasks in the broker.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local queued = 0
for i = 1, 4 do queued = queued + redis.call('LLEN', KEYS[i]) end
return { now_ms, queued, 0, 0, 0, {} }
