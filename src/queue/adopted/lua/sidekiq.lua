-- A Sidekiq queue's numbers, read only.
-- KEYS[1] queue:<q>   list of waiting jobs
-- KEYS[2] processes   set of process identities; each identity is a hash (info JSON with
--                     the hostname, busy count) and <identity>:work (7.x) or
--                     <identity>:workers (6.x), a hash thread -> JSON {queue, payload, run_at}
-- KEYS[3] schedule, KEYS[4] retry: zsets (score = due unix s) of jobs of every queue
-- ARGV[1] the queue name, ARGV[2] how many entries of schedule/retry to look at (each way)
-- Returns {now ms, queued, in flight, delayed, failed, {hostname, busy}...}.
local t = redis.call('TIME')
local now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_ms = math.floor(now_s * 1000)
local q, bound = ARGV[1], tonumber(ARGV[2])
local function queue_of(json)
  local ok, m = pcall(cjson.decode, json)
  if not ok or type(m) ~= 'table' then return nil end
  if type(m.queue) == 'string' then return m.queue end
  local p = m.payload
  if type(p) == 'string' then
    ok, p = pcall(cjson.decode, p)
    if not ok then return nil end
  end
  if type(p) == 'table' then return p.queue end
  return nil
end
local queued = redis.call('LLEN', KEYS[1])
-- Due scheduled jobs and retries are moved to their queue by a running Sidekiq process's
-- poller: with no process running they wait, so they count as queued work.
local delayed = 0
for i = 3, 4 do
  for _, job in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now_s, 'LIMIT', 0, bound)) do
    if queue_of(job) == q then queued = queued + 1 end
  end
  for _, job in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. now_s, '+inf', 'LIMIT', 0, bound)) do
    if queue_of(job) == q then delayed = delayed + 1 end
  end
end
local in_flight, workers = 0, {}
for _, identity in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local info = redis.call('HGET', identity, 'info')
  -- A process that stopped beating has an expired hash: it runs nothing.
  if info then
    local ok, i = pcall(cjson.decode, info)
    local host = (ok and type(i) == 'table' and i.hostname) or identity
    local work = redis.call('HVALS', identity .. ':work')
    if #work == 0 then work = redis.call('HVALS', identity .. ':workers') end
    local busy = 0
    for _, w in ipairs(work) do
      if queue_of(w) == q then busy = busy + 1 end
    end
    in_flight = in_flight + busy
    workers[#workers + 1] = { host, busy }
  end
end
return { now_ms, queued, in_flight, delayed, 0, workers }
