-- What every adopted Sidekiq queue of this Redis has running, due and delayed, read once:
-- Sidekiq keeps these for all queues together.
-- KEYS[1] processes   set of process identities; each identity is a hash (info JSON with the
--                     hostname) and <identity>:work (7.x) or <identity>:workers (6.x), a hash
--                     thread -> JSON {queue, payload, run_at}
-- KEYS[2] schedule, KEYS[3] retry: zsets (score = due unix s) of jobs of every queue
-- ARGV[1] how many entries of schedule/retry to look at, each side of now; ARGV[2..] the
-- queue names
-- Returns, per queue in ARGV's order, {in flight, due, delayed, {hostname, busy}...}.
local t = redis.call('TIME')
local now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
local bound = tonumber(ARGV[1])
local index, out = {}, {}
for i = 2, #ARGV do
  index[ARGV[i]] = i - 1
  out[i - 1] = { 0, 0, 0, {} }
end
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
for _, identity in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local info = redis.call('HGET', identity, 'info')
  -- A process that stopped beating has an expired hash: it runs nothing.
  if info then
    local ok, i = pcall(cjson.decode, info)
    local host = (ok and type(i) == 'table' and i.hostname) or identity
    local work = redis.call('HVALS', identity .. ':work')
    if #work == 0 then work = redis.call('HVALS', identity .. ':workers') end
    local busy = {}
    for _, w in ipairs(work) do
      local q = index[queue_of(w) or '']
      if q then busy[q] = (busy[q] or 0) + 1 end
    end
    for q, n in pairs(busy) do
      out[q][1] = out[q][1] + n
      table.insert(out[q][4], { host, n })
    end
  end
end
-- Due scheduled jobs and retries are moved to their queue by a running Sidekiq process's
-- poller: with no process running they wait, so they count as queued work.
for k = 2, 3 do
  for _, job in ipairs(redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', now_s, 'LIMIT', 0, bound)) do
    local q = index[queue_of(job) or '']
    if q then out[q][2] = out[q][2] + 1 end
  end
  for _, job in ipairs(redis.call('ZRANGEBYSCORE', KEYS[k], '(' .. now_s, '+inf', 'LIMIT', 0, bound)) do
    local q = index[queue_of(job) or '']
    if q then out[q][3] = out[q][3] + 1 end
  end
end
return out
