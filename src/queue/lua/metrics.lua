-- One queue's numbers, read atomically (one consistent view per queue).
-- KEYS[1] stream, KEYS[2] delayed zset, KEYS[3] dead-letter stream, KEYS[4] the job counters
-- hash (`<prefix>:jobstats`, kept by job_count in common.lua)
-- ARGV[1] group, ARGV[2] bound of the lag estimate
-- Returns {state (0 no stream, 1 no group, 2 ok), now ms, length, delayed, dead length,
--          lag, lag source (0 reported, 1 estimated, 2 estimate hit the bound), pending,
--          oldest pending idle ms (-1 if none), last delivered id, {name, pending, idle}...,
--          the job counters as a flat field list}
local stream, group = KEYS[1], ARGV[1]
local now = now_ms()
local delayed = redis.call('ZCARD', KEYS[2])
-- Most queues are read at every poll, so no call is spent on checks the reads make themselves:
-- XLEN of a missing key is 0 (a dead-letter key of another type counts as none), and the
-- stream's type is looked up only when XINFO fails.
local ok, dead = pcall(redis.call, 'XLEN', KEYS[3])
if not ok then dead = 0 end
local groups, err = stream_call(stream, { 'XINFO', 'GROUPS', stream })
if err then
  -- A missing stream is a state to report, not an error.
  if stream_type(stream) == 'none' then return { 0, now, 0, delayed, dead } end
  return err
end
local len = redis.call('XLEN', stream)
local info = nil
for _, g in ipairs(groups) do
  local m = to_map(g)
  if m['name'] == group then info = m end
end
if info == nil then return { 1, now, len, delayed, dead } end
local lag, source = info['lag'], 0
if not lag then
  -- Redis cannot compute lag after deletions or XGROUP SETID: count the entries after the
  -- group's last-delivered id instead, up to the bound (never XLEN: it counts acked entries).
  local bound = tonumber(ARGV[2])
  local after = redis.call('XRANGE', stream, '(' .. info['last-delivered-id'], '+', 'COUNT', bound)
  lag = #after
  source = (#after >= bound) and 2 or 1
end
local oldest_idle = -1
if tonumber(info['pending']) > 0 then
  local first = redis.call('XPENDING', stream, group, '-', '+', 1)
  if #first > 0 then oldest_idle = first[1][3] end
end
local consumers = {}
if tonumber(info['consumers']) > 0 then
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
    local m = to_map(c)
    consumers[#consumers + 1] = { m['name'], m['pending'], m['idle'] }
  end
end
return { 2, now, len, delayed, dead, lag, source, info['pending'], oldest_idle,
         info['last-delivered-id'], consumers, redis.call('HGETALL', KEYS[4]) }
