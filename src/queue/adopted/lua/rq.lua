-- An RQ queue's numbers, read only. RQ keeps, per queue <q>:
-- KEYS[1] rq:queue:<q>      list of job ids waiting
-- KEYS[2] rq:wip:<q>        started registry (zset, score = expiry in unix s, +inf: no timeout)
-- KEYS[3] rq:scheduled:<q>  scheduled registry (zset, score = due unix s)
-- KEYS[4] rq:failed:<q>     failed registry (zset)
-- KEYS[5] rq:workers:<q>    set of the worker hash keys (rq:worker:<name>) serving <q>
-- Returns {now ms, queued, in flight, delayed, failed, {name, busy}...}.
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)
-- A due scheduled job waits for a worker started with --with-scheduler: it is queued work.
local due = redis.call('ZCOUNT', KEYS[3], '-inf', now_s)
local queued = redis.call('LLEN', KEYS[1]) + due
local delayed = redis.call('ZCARD', KEYS[3]) - due
-- Entries past their expiry belong to workers that died; RQ's own cleanup removes them.
local in_flight = redis.call('ZCOUNT', KEYS[2], now_s, '+inf')
local failed = redis.call('ZCARD', KEYS[4])
local workers = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local f = redis.call('HMGET', key, 'state', 'hostname')
  if f[1] then
    local busy = (f[1] == 'busy') and 1 or 0
    -- A worker is named by `--name` (the pod, or the process in local mode) when it was
    -- given one; RQ's default name is a random uuid4 hex, and then its host (the pod) names it.
    local name = string.sub(key, 11)
    if #name == 32 and string.match(name, '^%x+$') and f[2] then name = f[2] end
    workers[#workers + 1] = { name, busy }
  end
end
return { now_ms, queued, in_flight, delayed, failed, workers }
