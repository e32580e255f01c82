-- A BullMQ queue's numbers, read only. Under its prefix <p> (default "bull"), queue <q>:
-- KEYS[1] <p>:<q>:wait         list of waiting job ids
-- KEYS[2] <p>:<q>:prioritized  zset of waiting jobs with a priority
-- KEYS[3] <p>:<q>:active       list of jobs a worker holds; each job's hash <p>:<q>:<id>
--                              names the Worker in `pb` (its `name` option, when set)
-- KEYS[4] <p>:<q>:delayed      zset, score = due unix ms * 4096 + a 12-bit counter
-- KEYS[5] <p>:<q>:failed       zset of failed jobs
-- KEYS[6] <p>:<q>:meta         hash; field `paused` while the queue is paused
-- KEYS[7] <p>:<q>:paused       list (BullMQ before 5 moved waiting jobs here while paused)
-- ARGV[1] the key prefix of job hashes (<p>:<q>:), ARGV[2] how many active jobs to attribute
-- Returns {now ms, queued, in flight, delayed, failed, {worker, busy}...}.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Workers promote due delayed jobs: with none running they wait, so they are queued work.
local due = redis.call('ZCOUNT', KEYS[4], 0, (now_ms + 1) * 4096 - 1)
local waiting = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + due
local delayed = redis.call('ZCARD', KEYS[4]) - due
local queued = waiting
-- A paused queue's jobs wait for a resume, not for workers: delayed, not queued.
if redis.call('HEXISTS', KEYS[6], 'paused') == 1 then
  queued, delayed = 0, delayed + waiting
end
delayed = delayed + redis.call('LLEN', KEYS[7])
local workers = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[3], 0, tonumber(ARGV[2]) - 1)) do
  local by = redis.call('HGET', ARGV[1] .. id, 'pb')
  if by then workers[#workers + 1] = { by, 1 } end
end
return { now_ms, queued, redis.call('LLEN', KEYS[3]), delayed, redis.call('ZCARD', KEYS[5]), workers }
