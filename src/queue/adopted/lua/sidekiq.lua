-- A Sidekiq queue's waiting jobs, read only.
-- KEYS[1] queue:<q>   list of waiting jobs
-- Returns {now ms, queued, 0, 0, 0, {}}: running, due and delayed jobs come from the shared
-- reading of the processes and the schedule and retry sets (sidekiq_shared.lua).
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return { now_ms, redis.call('LLEN', KEYS[1]), 0, 0, 0, {} }
