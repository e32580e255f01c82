-- Fires one run of a schedule, exactly once: compare-and-set on the schedule's zset score.
-- KEYS[1] schedules zset, KEYS[2] schedule hash, KEYS[3] stream, KEYS[4] delayed zset,
-- KEYS[5] the queue's settings hash (optional: the fired job's record is written when given),
-- KEYS[6] the queue's leadership epoch
-- ARGV: name, expected_score_ms, revision, fire_ms ('' = fire nothing), next_ms ('' = never
--       again), missed (runs to count as missed), job_id, group, the leadership term (see
--       fence.lua)
-- Returns {status, entry_id}: 'stale' (another scheduler moved the score: nothing done),
-- 'revision' (the definition changed since the caller read it: nothing done), 'fired',
-- 'skipped' (concurrencyPolicy Forbid and the previous job is unread or pending), 'advanced'
-- (no run to fire, only the next time and the missed count were written).
if fenced(KEYS[6], ARGV[9]) then return redis.error_reply(FENCED) end
local name = ARGV[1]
local score = redis.call('ZSCORE', KEYS[1], name)
if not score or tonumber(score) ~= tonumber(ARGV[2]) then
  return {'stale', ''}
end
local def = redis.call('HMGET', KEYS[2], 'revision', 'concurrency_policy', 'last_entry_id', 'payload',
  'last_retry_member')
if def[1] ~= ARGV[3] then
  return {'revision', ''}
end

-- Stream ids are "ms-seq"; compare numerically part by part.
local function id_after(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if not ams or not bms then return false end
  ams, bms = tonumber(ams), tonumber(bms)
  if ams ~= bms then return ams > bms end
  return tonumber(aseq) > tonumber(bseq)
end

-- Whether the previous run's job is still unread by the group, delivered but unacknowledged,
-- or waiting out a retry's backoff in the delayed set (see schedule_of_last_run).
local function previous_busy(entry, group, retry_member)
  if retry_member and retry_member ~= '' and redis.call('ZSCORE', KEYS[4], retry_member) then
    return true
  end
  if not entry or entry == '' then return false end
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[3])
  if not ok then return false end
  for _, g in ipairs(groups) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == group then
      if id_after(entry, info['last-delivered-id']) then return true end
      local pending = redis.call('XPENDING', KEYS[3], group, entry, entry, 1)
      return #pending > 0
    end
  end
  return false
end

-- Every script call costs: the schedule's fields are written with one HSET at the end, and
-- a field is deleted only when the read above found it.
local state = { 'next_schedule_time', ARGV[5] }
local status, entry = 'advanced', ''
if ARGV[4] ~= '' then
  if def[2] == 'Forbid' and previous_busy(def[3], ARGV[8], def[5]) then
    status = 'skipped'
    redis.call('HINCRBY', KEYS[2], 'skipped_runs', 1)
  else
    local t = redis.call('TIME')
    local now_ms = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
    entry = redis.call('XADD', KEYS[3], '*',
      'id', ARGV[7], 'payload', def[4] or '{}', 'enqueued_at', now_ms, 'attempt', '1',
      'schedule', name, 'scheduled_for', ARGV[4])
    for _, v in ipairs({ 'last_schedule_time', ARGV[4], 'last_job_id', ARGV[7],
      'last_entry_id', entry, 'last_fire_time', now_ms }) do
      state[#state + 1] = v
    end
    if def[5] then redis.call('HDEL', KEYS[2], 'last_retry_member') end
    redis.call('HINCRBY', KEYS[2], 'fired_runs', 1)
    job_record(job_settings(KEYS[5], { 'tracking', 'waiting_ttl_ms', 'events_max_length' }),
      ARGV[7], 'queued', 1, tonumber(now_ms), { 'enqueued_at', now_ms, 'entry', entry },
      { fresh = true })
    status = 'fired'
  end
end
local missed = tonumber(ARGV[6])
if missed and missed > 0 then
  redis.call('HINCRBY', KEYS[2], 'missed_runs', missed)
end
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[1], name)
else
  redis.call('ZADD', KEYS[1], ARGV[5], name)
end
redis.call('HSET', KEYS[2], unpack(state))
return {status, entry}
