-- Helpers prepended to every queue script (scripts run atomically on one node; all keys of a
-- queue share one Cluster slot).

-- Server time in ms: one clock for every producer, worker and janitor.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as decimal strings without exponent (tostring(1e12) would give "1e+12").
local function int_str(n)
  return string.format('%d', n)
end

-- Compare two non-negative decimal strings of any length.
local function num_cmp(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  if a == b then return 0 end
  return a < b and -1 or 1
end

-- Compare two stream ids "ms-seq" exactly (no float rounding).
local function id_cmp(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  local c = num_cmp(am, bm)
  if c ~= 0 then return c end
  return num_cmp(as, bs)
end

local function id_min(a, b)
  if a == nil then return b end
  if b == nil then return a end
  return id_cmp(a, b) <= 0 and a or b
end

-- Flat field list {k1, v1, k2, v2, ...} helpers.
local function field_get(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

local function field_set(fields, name, value)
  for i = 1, #fields, 2 do
    if fields[i] == name then
      fields[i + 1] = value
      return
    end
  end
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end

local function fields_without(fields, drop)
  local out = {}
  for i = 1, #fields, 2 do
    if not drop[fields[i]] then
      out[#out + 1] = fields[i]
      out[#out + 1] = fields[i + 1]
    end
  end
  return out
end

-- Most attempts a job may carry. The `attempt` field is written by producers too: a value that
-- is not a whole number from 1 to this would loop a job forever (or index the backoff table
-- wrongly), so such a job is dead-lettered as malformed instead.
local MAX_ATTEMPT = 1000000

-- The job's attempt, or nil and the text found when it is unusable. A job without the field
-- is on its first attempt.
local function parse_attempt(fields)
  local raw = field_get(fields, 'attempt')
  if raw == nil then return 1 end
  local n = tonumber(raw)
  if n and n == math.floor(n) and n >= 1 and n <= MAX_ATTEMPT then return n end
  return nil, raw
end

-- concurrencyPolicy Forbid watches a schedule's last run. When that run's job is handed out
-- again, the schedule follows it: to its new entry (`last_entry_id`), or, while it waits out a
-- backoff, to its member of the delayed set (`last_retry_member`; `last_entry_id` stays a valid
-- stream id, so older fire scripts keep working). Returns the schedule hash's key when `fields`
-- is the last run's job. `schedule_prefix` is the queue's '<prefix>:schedule:' (the schedule
-- hashes share the queue's slot).
local function schedule_of_last_run(schedule_prefix, fields)
  local name = field_get(fields, 'schedule')
  if not name or not schedule_prefix or schedule_prefix == '' then return nil end
  local key = schedule_prefix .. name
  local last = redis.call('HGET', key, 'last_job_id')
  if last and last == field_get(fields, 'id') then return key end
  return nil
end

-- The job `fields` of a schedule's last run was added to the stream as `entry`.
local function follow_to_entry(schedule_prefix, fields, entry)
  local key = schedule_of_last_run(schedule_prefix, fields)
  if key then
    redis.call('HSET', key, 'last_entry_id', entry)
    redis.call('HDEL', key, 'last_retry_member')
  end
end

-- Flat reply {k1, v1, ...} (XINFO) to a table.
local function to_map(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end

-- XADD with an optional exact MAXLEN cap (0 = uncapped).
local function xadd(key, maxlen, fields)
  if maxlen > 0 then
    return redis.call('XADD', key, 'MAXLEN', maxlen, '*', unpack(fields))
  end
  return redis.call('XADD', key, '*', unpack(fields))
end

-- A delayed-set member is a JSON object of the job's fields; field order is fixed (id,
-- payload, enqueued_at, attempt, then the rest sorted) so the member text is deterministic.
local CORE = { 'id', 'payload', 'enqueued_at', 'attempt' }
local IS_CORE = { id = true, payload = true, enqueued_at = true, attempt = true }

local function fields_to_member(fields)
  local obj = {}
  for i = 1, #fields, 2 do obj[fields[i]] = fields[i + 1] end
  return cjson.encode(obj)
end

-- Decode a member into stream fields, or nil and a reason when it is not a usable job.
local function member_to_fields(member, now)
  local ok, obj = pcall(cjson.decode, member)
  if not ok or type(obj) ~= 'table' then return nil, 'not a JSON object' end
  if type(obj.payload) ~= 'string' then return nil, 'payload is missing or not a string of JSON text' end
  local function str(v)
    if type(v) == 'number' then
      if v == math.floor(v) then return int_str(v) end
      return tostring(v)
    end
    if type(v) == 'string' then return v end
    return nil
  end
  local fields = {}
  local id = str(obj.id)
  if id == nil or id == '' then id = redis.sha1hex(member) end
  fields[#fields + 1] = 'id'; fields[#fields + 1] = id
  fields[#fields + 1] = 'payload'; fields[#fields + 1] = obj.payload
  fields[#fields + 1] = 'enqueued_at'; fields[#fields + 1] = str(obj.enqueued_at) or int_str(now)
  fields[#fields + 1] = 'attempt'; fields[#fields + 1] = str(obj.attempt) or '1'
  local rest = {}
  for k, v in pairs(obj) do
    if not IS_CORE[k] and str(v) ~= nil then rest[#rest + 1] = k end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do
    fields[#fields + 1] = k; fields[#fields + 1] = str(obj[k])
  end
  return fields, nil
end

local function stream_type(key)
  return redis.call('TYPE', key)['ok']
end

local function require_stream(key)
  local t = stream_type(key)
  if t == 'none' then
    return redis.error_reply('NOSTREAM stream ' .. key .. ' does not exist')
  end
  if t ~= 'stream' then
    return redis.error_reply('WRONGTYPE key ' .. key .. ' holds a ' .. t .. ', not a stream')
  end
  return nil
end

-- Runs `cmd` (a list of command words) on `stream` without a type check first: every call a
-- script makes costs, and the check matters only when the call fails. Then the stream is
-- looked up for a clear error (missing, another type), else the call is made again to raise
-- its own error as Redis words it (NOGROUP, ...). Returns the reply, or nil and the error.
local function stream_call(stream, cmd)
  local ok, reply = pcall(redis.call, unpack(cmd))
  if ok then return reply end
  local err = require_stream(stream)
  if err then return nil, err end
  return redis.call(unpack(cmd))
end

-- Job records (docs/architecture.md#redis-data-model): one hash per job, `<prefix>:job:<id>`,
-- and a capped stream of state changes, `<prefix>:events`. `<prefix>` is the queue's key prefix
-- (see QueueKeys); the per-queue rules live in the hash `<prefix>:settings`, whose key the
-- scripts receive (a script given no settings key writes no record). Absent fields take the
-- defaults below, so a queue whose settings were never stored still tracks its jobs.
local JOB_DEFAULTS = {
  tracking = '1', succeeded_ttl_ms = '86400000', dead_ttl_ms = '604800000',
  waiting_ttl_ms = '604800000', max_result_size = '65536', events_max_length = '10000',
  group = 'workers', max_deliveries = '5', visibility_timeout_ms = '300000', backoff_ms = '',
  dead_letter_max_length = '0',
}

-- The queue's settings, plus `prefix` and the keys derived from it. Reading the whole hash is
-- the largest part of a small function's cost, so a hot caller names the fields it needs
-- (`wanted`, read with one HMGET) and any other field is read when first used. Without
-- `wanted` the whole hash is read. Missing or empty fields take JOB_DEFAULTS.
local function job_settings(settings_key, wanted)
  if not settings_key or settings_key == '' then return nil end
  local prefix = string.sub(settings_key, 1, #settings_key - #':settings')
  local s = { prefix = prefix, events = prefix .. ':events', delayed = prefix .. ':delayed',
    schedule_prefix = prefix .. ':schedule:' }
  local function put(k, v)
    if v and v ~= '' then
      s[k] = v
    elseif k == 'dead_letter' then
      s[k] = prefix .. ':dead'
    else
      s[k] = JOB_DEFAULTS[k]
    end
  end
  if not wanted then
    local flat = redis.call('HGETALL', settings_key)
    for i = 1, #flat, 2 do put(flat[i], flat[i + 1]) end
    for k, v in pairs(JOB_DEFAULTS) do
      if s[k] == nil then s[k] = v end
    end
    if s.dead_letter == nil then put('dead_letter', nil) end
    return s
  end
  local values = redis.call('HMGET', settings_key, unpack(wanted))
  for i, k in ipairs(wanted) do put(k, values[i]) end
  return setmetatable(s, { __index = function(t, k)
    if JOB_DEFAULTS[k] == nil and k ~= 'dead_letter' then return nil end
    put(k, redis.call('HGET', settings_key, k))
    return rawget(t, k)
  end })
end

local function job_key(s, id)
  return s.prefix .. ':job:' .. id
end

-- Backoff delay (ms) after failed attempt `attempt`, from the comma-separated table.
local function backoff_after(s, attempt)
  local i = 0
  for d in string.gmatch(s.backoff_ms, '[^,]+') do
    i = i + 1
    if i == attempt then return tonumber(d) or 0 end
  end
  return 0
end

-- How long a record in `state` lives; a waiting record lives until its due time and then some.
local function job_ttl_ms(s, state, due, now)
  if state == 'succeeded' then return tonumber(s.succeeded_ttl_ms) end
  if state == 'dead' or state == 'cancelled' then return tonumber(s.dead_ttl_ms) end
  local ttl = tonumber(s.waiting_ttl_ms)
  if due and due > now then ttl = ttl + (due - now) end
  return ttl
end

-- Upper bounds (ms) of the job duration histogram's buckets; the operator reads the same list
-- (queue::metrics::JOB_DURATION_BUCKETS_MS).
local JOB_DURATION_BUCKETS_MS = { 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
  300000, 900000, 3600000 }

-- Counts a state change in `<prefix>:jobstats` (read by the metrics snapshot): succeeded, dead,
-- cancelled once per job; failed for an attempt that failed and will be retried (the attempt
-- grows); a success's run time (started_at to now) in the duration histogram (one bucket
-- per run, so the buckets' sum is the count, and the sum of run times). `prev` is the
-- record's {state, attempt, started_at} before the change.
local function job_count(s, prev, state, attempt, now)
  local stats = s.prefix .. ':jobstats'
  if state == 'succeeded' or state == 'dead' or state == 'cancelled' then
    if prev[1] == state then return end
    redis.call('HINCRBY', stats, state, 1)
    local started = tonumber(prev[3])
    if state ~= 'succeeded' or not started then return end
    local ms = math.max(0, now - started)
    local bucket = 'inf'
    for _, b in ipairs(JOB_DURATION_BUCKETS_MS) do
      if ms <= b then bucket = tostring(b); break end
    end
    redis.call('HINCRBY', stats, 'duration_le_' .. bucket, 1)
    redis.call('HINCRBY', stats, 'duration_sum_ms', int_str(ms))
  elseif (state == 'queued' or state == 'retrying')
      and tonumber(attempt) > (tonumber(prev[2]) or tonumber(attempt)) then
    redis.call('HINCRBY', stats, 'failed', 1)
  end
end

-- Records a state change of job `id`: record fields `extra` (flat list; '' values are
-- deleted), a fresh TTL, and one event. A cancelled record keeps its state unless `force`
-- (a replay); `fresh` starts a new record (enqueue, fire, replay). Returns 'cancelled' when
-- the record was left alone for that reason.
local function job_record(s, id, state, attempt, now, extra, opts)
  if not s or s.tracking ~= '1' or not id or id == '' then return nil end
  opts = opts or {}
  local key = job_key(s, id)
  local set = { 'state', state, 'attempt', tostring(attempt), 'updated_at', int_str(now) }
  local del = {}
  for i = 1, #(extra or {}), 2 do
    if extra[i + 1] == '' then
      del[#del + 1] = extra[i]
    else
      set[#set + 1] = extra[i]
      set[#set + 1] = extra[i + 1]
    end
  end
  local prev = {}
  if not opts.fresh then
    -- One read gives the state change's context and which fields to drop actually exist:
    -- every call a script makes costs, so an HDEL is made only when it has work.
    prev = redis.call('HMGET', key, 'state', 'attempt', 'started_at', unpack(del))
    if not opts.force and prev[1] == 'cancelled' then return 'cancelled' end
    local present = {}
    for i, name in ipairs(del) do
      if prev[3 + i] then present[#present + 1] = name end
    end
    if #present > 0 then redis.call('HDEL', key, unpack(present)) end
  end
  job_count(s, prev, state, attempt, now)
  local added = redis.call('HSET', key, unpack(set))
  if opts.fresh and added < #set / 2 then
    -- Some fields were there already: an older record of this id (an id used again) is
    -- started afresh. A new id, the usual case, spares the DEL.
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(set))
  end
  if not opts.keep_ttl then redis.call('PEXPIRE', key, job_ttl_ms(s, state, opts.due, now)) end
  redis.call('XADD', s.events, 'MAXLEN', '~', s.events_max_length, '*',
    'job', id, 'state', state, 'attempt', tostring(attempt), 'at', int_str(now))
  return nil
end

-- Adds job `id` with `payload` (JSON text), now or delayed, at most once per idempotency key:
-- `due` is '0' (now), unix ms, or '+N' (N ms from now on the server clock); `idem_key` is the
-- key's record (nil: no key) kept `ttl_ms`; `extra` holds field pairs from index `from` on.
-- Returns {job id, 1 if added / 0 if the key already named a job, stream entry id or ''}.
local function enqueue_job(stream, delayed, idem_key, s, id, payload, due, ttl_ms, extra, from)
  if idem_key then
    local prev = redis.call('GET', idem_key)
    if prev then return { prev, 0, '' } end
  end
  local now = now_ms()
  local fields = { 'id', id, 'payload', payload, 'enqueued_at', int_str(now), 'attempt', '1' }
  for i = from, #extra, 2 do
    fields[#fields + 1] = extra[i]
    fields[#fields + 1] = extra[i + 1]
  end
  local at
  if string.sub(due, 1, 1) == '+' then
    at = now + tonumber(string.sub(due, 2))
  else
    at = tonumber(due)
  end
  -- A job is never added to a stream that is missing (it would be created without the
  -- group) or of another type; NOMKSTREAM makes the XADD check that without a call of its own.
  local entry = ''
  if at > now then
    local err = require_stream(stream)
    if err then return err end
    redis.call('ZADD', delayed, at, fields_to_member(fields))
  else
    local ok, added = pcall(redis.call, 'XADD', stream, 'NOMKSTREAM', '*', unpack(fields))
    if not ok or not added then
      local err = require_stream(stream)
      if err then return err end
      -- Neither missing nor of another type: the call again, to raise its error as it is.
      added = redis.call('XADD', stream, 'NOMKSTREAM', '*', unpack(fields))
    end
    entry = added
  end
  job_record(s, id, entry == '' and 'delayed' or 'queued', 1, now,
    { 'enqueued_at', int_str(now), 'entry', entry, 'due', entry == '' and int_str(at) or '' },
    { fresh = true, due = at })
  if idem_key then
    redis.call('SET', idem_key, id, 'PX', ttl_ms)
  end
  return { id, 1, entry }
end

-- Whether job `id`'s record says it was cancelled.
local function job_cancelled(s, id)
  if not s or not id then return false end
  return redis.call('HGET', job_key(s, id), 'state') == 'cancelled'
end

-- Moves the job of stream entry `entry` (fields `fields`) to the dead-letter stream because
-- its attempt field is unusable (`raw`), acknowledges the entry, and ends its record.
local function dead_letter_malformed(stream, group, entry, fields, dead, dead_maxlen, raw, now, s)
  local out = fields_without(fields, {})
  local detail = string.format('attempt must be a whole number from 1 to %d; got %q',
    MAX_ATTEMPT, tostring(raw))
  field_set(out, 'reason', 'malformed_attempt')
  field_set(out, 'detail', detail)
  field_set(out, 'original_id', entry)
  field_set(out, 'dead_at', int_str(now))
  xadd(dead, dead_maxlen, out)
  redis.call('XACK', stream, group, entry)
  job_record(s, field_get(fields, 'id'), 'dead', 1, now, { 'entry', '', 'consumer', '',
    'finished_at', int_str(now), 'error', detail })
end
