-- The `jobqueue` Redis Functions library: worker operations on job records, the same for every
-- client language (docs/architecture.md#redis-data-model). Loaded with FUNCTION LOAD after the
-- common helpers; `jobqueue_version` tells clients which revision is loaded.
--
-- Keys. `<prefix>` is the queue's key prefix: the stream key when it carries a hash tag
-- (`jobqueue:{ns/name}`), else `{<stream>}`. Every function takes the same three keys:
--   KEYS[1] the stream, KEYS[2] `<prefix>:settings`, KEYS[3] `<prefix>:job:<job id>`.
-- The settings hash (written by the operator; a missing field takes the default in brackets):
--   group [workers], max_deliveries [5], visibility_timeout_ms [300000], backoff_ms (delays
--   after attempt 1, 2, ... comma-separated; [''] = retry at once), dead_letter
--   [<prefix>:dead], dead_letter_max_length [0 = uncapped], tracking [1; 0 = no records],
--   succeeded_ttl_ms [86400000], dead_ttl_ms (dead and cancelled) [604800000],
--   waiting_ttl_ms (bound of a waiting or running record from when it started waiting, plus
--   any delay; a heartbeat or progress report renews it) [604800000],
--   max_result_size (bytes of result or progress JSON) [65536], events_max_length [10000].
--
-- A producer adds a job with
--   FCALL jobqueue_enqueue 2 <stream> <settings> <job id> <payload JSON> <due> <idempotency
--     key or ''> <idempotency TTL ms or ''> [field value ...]
--     -> {job id, 1 if added | 0 if the idempotency key already named a job (its id is
--        answered), stream entry id or '' when delayed}. <due> is 0 (now), unix ms, or +N (N ms
--        from now on the Redis clock); the key is kept for the TTL [86400000]; extra fields
--        must not be id, payload, enqueued_at or attempt. The same script the operator's
--        `enqueue` runs.
-- A worker takes jobs with one call, which reads and starts them:
--   FCALL jobqueue_take 2 <stream> <settings> <group> <consumer> <count>
--     -> up to <count> new entries, each {entry id, {field, value, ...}} as XREADGROUP gives
--        them, already marked active (jobs cancelled while queued are acknowledged and left
--        out); an empty list when none is waiting. Functions cannot block: on an empty answer
--        the worker blocks in XREADGROUP and starts what that hands it with jobqueue_start.
-- or reads with plain XREADGROUP (fields `id`, `payload`, `attempt`, ...), then:
--   FCALL jobqueue_start 3 <keys> <group> <consumer> <entry id> <job id>
--     -> {'active'|'cancelled'|'stale'|'dead', attempt}. Run the job only on 'active';
--        'cancelled' means it was cancelled while queued (the entry is acknowledged); 'stale'
--        means the delivery is no longer this consumer's (reclaimed); 'dead' means its attempt
--        field is not a whole number from 1 to 1000000 (dead-lettered as malformed_attempt;
--        jobqueue_take leaves such jobs out the same way).
--   FCALL jobqueue_progress 3 <keys> <group> <consumer> <entry id> <job id> <JSON>
--     -> {'active'|'stale', cancel requested 0|1}; also extends the visibility timeout.
--   FCALL jobqueue_heartbeat 3 <keys> <group> <consumer> <entry id> <job id>
--     -> {'active'|'stale', cancel requested 0|1}: resets the entry's idle time.
--   FCALL jobqueue_complete 3 <keys> <group> <entry id> <job id> <result JSON or ''> [attempt]
--     -> {'succeeded'|'stale', attempt}; XACK plus the record. A result that is not JSON is
--        stored as a JSON string; one larger than max_result_size is dropped (`result_dropped`).
--        The delivery's attempt, when given, spares a read of the entry.
--   FCALL jobqueue_fail 3 <keys> <group> <entry id> <job id> <error text> <permanent 0|1>
--     -> {state, attempt}: 'queued' or 'retrying' (attempt + 1, after the queue's backoff),
--        'dead' (dead-lettered: permanent, or the last allowed attempt), 'cancelled' (a cancel
--        was requested while it ran), or 'stale'.
--   FCALL jobqueue_cancel 3 <keys> <job id> <group or ''>
--     -> {'cancelled'|'requested'|'final'|'missing', state}: a queued, delayed or retrying job
--        is cancelled (never started by these functions); an active one is flagged
--        (`cancel_requested`, seen by progress and heartbeat).
--   FCALL_RO jobqueue_get 3 <keys> <job id> <group or ''>
--     -> the record as a flat field list, or nil. A record still saying queued/active whose
--        entry the group delivered and no longer holds reads succeeded (`derived` = 1): a worker
--        that only XACKs is followed too.
--   FCALL_RO jobqueue_version 0 -> the library revision (an integer).
-- Record fields: state (queued, delayed, active, retrying, succeeded, dead, cancelled),
-- attempt, enqueued_at, started_at, finished_at, updated_at, due (unix ms, Redis clock),
-- entry, consumer, progress, result, result_dropped, error, cancel_requested.
-- Every state change is also added to `<prefix>:events` (capped): job, state, attempt, at; a
-- progress report adds one with state active and a `progress` field.
-- Each end and each retried failure is also counted in `<prefix>:jobstats` (job_count in the
-- common helpers): succeeded, failed, dead, cancelled, and a histogram of success run times.

local VERSION = 7

-- The settings fields each hot function reads for sure (job_settings reads others when used).
local ENQUEUE_SETTINGS = { 'tracking', 'waiting_ttl_ms', 'events_max_length' }
local START_SETTINGS = { 'tracking', 'events_max_length' }
local COMPLETE_SETTINGS = { 'tracking', 'max_result_size', 'succeeded_ttl_ms', 'events_max_length' }

-- The consumer holding `entry`, or nil when it is not pending in `group`.
local function pending_owner(stream, group, entry)
  local ok, p = pcall(redis.call, 'XPENDING', stream, group, entry, entry, 1)
  if not ok or type(p) ~= 'table' or #p == 0 then return nil end
  return p[1][2]
end

local function entry_fields(stream, entry)
  local e = redis.call('XRANGE', stream, entry, entry)
  if #e == 0 then return nil end
  return e[1][2]
end

local function group_name(s, given)
  if given and given ~= '' then return given end
  return s.group
end

-- The record with its state derived for workers that only XACK (see the header).
local function derive(stream, s, id, group)
  local rec = to_map(redis.call('HGETALL', job_key(s, id)))
  if rec.state == nil then return nil end
  if (rec.state ~= 'queued' and rec.state ~= 'active') or not rec.entry then return rec end
  if stream_type(stream) ~= 'stream' then return rec end
  local last = nil
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local m = to_map(g)
    if m['name'] == group then last = m['last-delivered-id'] end
  end
  if not last or id_cmp(rec.entry, last) > 0 then return rec end
  local owner = pending_owner(stream, group, rec.entry)
  if owner then
    rec.state = 'active'
    if not rec.consumer then rec.consumer = owner end
  else
    rec.state = 'succeeded'
    rec.derived = '1'
  end
  return rec
end

local function flat(map)
  local out = {}
  for k, v in pairs(map) do
    out[#out + 1] = k
    out[#out + 1] = v
  end
  return out
end

-- Marks job `id` (entry `entry`, attempt `attempt`) active for `consumer`. Returns false
-- when it was cancelled while queued: the entry is then acknowledged.
-- The record keeps the TTL it got when it started waiting (the waiting/running bound; a
-- heartbeat or progress report renews it).
local function mark_active(s, stream, group, consumer, entry, id, attempt, now)
  local state = job_record(s, id, 'active', attempt, now, { 'entry', entry,
    'consumer', consumer, 'started_at', int_str(now), 'due', '', 'progress', '' },
    { keep_ttl = true })
  if state == 'cancelled' then
    redis.call('XACK', stream, group, entry)
    return false
  end
  return true
end

local function enqueue(keys, args)
  local s = job_settings(keys[2], ENQUEUE_SETTINGS)
  local id, payload, due, key, ttl = args[1], args[2], args[3] or '0', args[4], args[5]
  if not id or id == '' then return redis.error_reply('ERR job id must not be empty') end
  if not payload or not pcall(cjson.decode, payload) then
    return redis.error_reply('ERR payload must be JSON text')
  end
  if not tonumber((string.gsub(due, '^%+', ''))) then
    return redis.error_reply('ERR due must be 0, unix ms, or +ms; got ' .. due)
  end
  if not ttl or ttl == '' then ttl = '86400000' end
  if not tonumber(ttl) or tonumber(ttl) < 1 then
    return redis.error_reply('ERR idempotency TTL must be at least 1 ms; got ' .. ttl)
  end
  if #args % 2 ~= 1 then return redis.error_reply('ERR extra fields must come in pairs') end
  for i = 6, #args, 2 do
    if args[i] == '' or IS_CORE[args[i]] then
      return redis.error_reply('ERR field name ' .. args[i] .. ' is reserved or empty')
    end
  end
  local idem = nil
  if key and key ~= '' then idem = s.prefix .. ':idem:' .. key end
  return enqueue_job(keys[1], s.delayed, idem, s, id, payload, due, ttl, args, 6)
end

local function take(keys, args)
  local stream, s = keys[1], job_settings(keys[2], START_SETTINGS)
  local group, consumer, count = args[1], args[2], tonumber(args[3]) or 1
  local tracking, out = s.tracking == '1', {}
  local now = tracking and now_ms() or nil
  -- Jobs cancelled while queued are skipped, so read on until something runs or nothing is new.
  while #out == 0 do
    local read, err = stream_call(stream, { 'XREADGROUP', 'GROUP', group, consumer, 'COUNT',
      math.max(count, 1), 'STREAMS', stream, '>' })
    if err then return err end
    if not read then return out end
    for _, e in ipairs(read[1][2]) do
      local entry, fields = e[1], e[2]
      local id = field_get(fields, 'id') or entry
      local attempt, raw = parse_attempt(fields)
      if not attempt then
        dead_letter_malformed(stream, group, entry, fields, s.dead_letter,
          tonumber(s.dead_letter_max_length), raw, now or now_ms(), s)
      elseif not tracking or mark_active(s, stream, group, consumer, entry, id, attempt, now) then
        out[#out + 1] = e
      end
    end
  end
  return out
end

local function start(keys, args)
  local stream, s = keys[1], job_settings(keys[2], START_SETTINGS)
  local group, consumer, entry, id = args[1], args[2], args[3], args[4]
  local err = require_stream(stream)
  if err then return err end
  if pending_owner(stream, group, entry) ~= consumer then return { 'stale', 0 } end
  local fields = entry_fields(stream, entry)
  local attempt, raw = 1, nil
  if fields then attempt, raw = parse_attempt(fields) end
  if not attempt then
    dead_letter_malformed(stream, group, entry, fields, s.dead_letter,
      tonumber(s.dead_letter_max_length), raw, now_ms(), s)
    return { 'dead', 0 }
  end
  if not mark_active(s, stream, group, consumer, entry, id, attempt, now_ms()) then
    return { 'cancelled', attempt }
  end
  return { 'active', attempt }
end

-- `text` as JSON: itself when it parses, else a JSON string.
local function as_json(text)
  if pcall(cjson.decode, text) then return text end
  return cjson.encode(text)
end

-- Resets the entry's idle time when `consumer` holds it, and renews the running job's record
-- bound (a long job keeps its record). Returns whether it holds it.
local function touch(s, stream, group, consumer, entry, id)
  if pending_owner(stream, group, entry) ~= consumer then return false end
  redis.call('XCLAIM', stream, group, consumer, 0, entry, 'JUSTID')
  redis.call('PEXPIRE', job_key(s, id), s.waiting_ttl_ms)
  return true
end

local function cancel_flag(s, id)
  return redis.call('HGET', job_key(s, id), 'cancel_requested') == '1' and 1 or 0
end

local function heartbeat(keys, args)
  local stream, s = keys[1], job_settings(keys[2])
  local err = require_stream(stream)
  if err then return err end
  if not touch(s, stream, args[1], args[2], args[3], args[4]) then return { 'stale', 0 } end
  return { 'active', cancel_flag(s, args[4]) }
end

local function progress(keys, args)
  local stream, s = keys[1], job_settings(keys[2])
  local id = args[4]
  local err = require_stream(stream)
  if err then return err end
  if not touch(s, stream, args[1], args[2], args[3], id) then return { 'stale', 0 } end
  local value = as_json(args[5] or 'null')
  if s.tracking == '1' and #value <= tonumber(s.max_result_size) then
    local key = job_key(s, id)
    local now = now_ms()
    redis.call('HSET', key, 'progress', value, 'updated_at', int_str(now))
    redis.call('XADD', s.events, 'MAXLEN', '~', s.events_max_length, '*', 'job', id,
      'state', 'active', 'attempt', redis.call('HGET', key, 'attempt') or '1',
      'at', int_str(now), 'progress', value)
  end
  return { 'active', cancel_flag(s, id) }
end

local function complete(keys, args)
  local stream, s = keys[1], job_settings(keys[2], COMPLETE_SETTINGS)
  local group, entry, id, result = args[1], args[2], args[3], args[4] or ''
  -- No stream check: XACK answers 0 for a stream that is gone (reported as stale), and every
  -- call a function makes costs.
  local attempt = tonumber(args[5] or '')
  if not attempt then
    local fields = entry_fields(stream, entry)
    attempt = fields and tonumber(field_get(fields, 'attempt')) or 1
  end
  if redis.call('XACK', stream, group, entry) == 0 then return { 'stale', attempt } end
  if s.tracking ~= '1' then return { 'succeeded', attempt } end
  local now = now_ms()
  local extra = { 'finished_at', int_str(now), 'entry', '', 'error', '', 'result', '',
    'result_dropped', '' }
  if result ~= '' then
    result = as_json(result)
    if #result > tonumber(s.max_result_size) then
      field_set(extra, 'result_dropped', string.format(
        'result of %d bytes exceeds maxResultSize %s', #result, s.max_result_size))
    else
      field_set(extra, 'result', result)
    end
  end
  job_record(s, id, 'succeeded', attempt, now, extra)
  return { 'succeeded', attempt }
end

-- Puts a failed job back (after its backoff) with attempt + 1. Returns the new state.
local function retry(s, stream, fields, attempt, now, failed)
  local id = field_get(fields, 'id')
  field_set(fields, 'attempt', int_str(attempt + 1))
  local delay = backoff_after(s, attempt)
  if delay > 0 then
    local member = fields_to_member(fields)
    redis.call('ZADD', s.delayed, now + delay, member)
    local key = schedule_of_last_run(s.schedule_prefix, fields)
    if key then redis.call('HSET', key, 'last_retry_member', member) end
    field_set(failed, 'due', int_str(now + delay))
    job_record(s, id, 'retrying', attempt + 1, now, failed, { due = now + delay })
    return 'retrying'
  end
  local entry = redis.call('XADD', stream, '*', unpack(fields))
  follow_to_entry(s.schedule_prefix, fields, entry)
  field_set(failed, 'entry', entry)
  job_record(s, id, 'queued', attempt + 1, now, failed)
  return 'queued'
end

local function fail(keys, args)
  local stream, s = keys[1], job_settings(keys[2])
  local group, entry, message, permanent = args[1], args[2], args[4] or '', args[5] == '1'
  local err = require_stream(stream)
  if err then return err end
  local owner = pending_owner(stream, group, entry)
  if not owner then return { 'stale', 0 } end
  local fields = entry_fields(stream, entry)
  redis.call('XACK', stream, group, entry)
  if not fields then return { 'stale', 0 } end
  local id = field_get(fields, 'id') or args[3]
  local attempt, raw = parse_attempt(fields)
  local now = now_ms()
  if not attempt then
    dead_letter_malformed(stream, group, entry, fields, s.dead_letter,
      tonumber(s.dead_letter_max_length), raw, now, s)
    return { 'dead', 0 }
  end
  local failed = { 'entry', '', 'consumer', '', 'error', message }
  if cancel_flag(s, id) == 1 then
    field_set(failed, 'finished_at', int_str(now))
    job_record(s, id, 'cancelled', attempt, now, failed)
    return { 'cancelled', attempt }
  end
  if permanent or attempt >= tonumber(s.max_deliveries) then
    local dead = fields_without(fields, {})
    field_set(dead, 'reason', permanent and 'permanent_failure' or 'max_deliveries_exceeded')
    field_set(dead, 'last_failure', 'failed')
    field_set(dead, 'last_error', message)
    field_set(dead, 'last_consumer', owner)
    field_set(dead, 'original_id', entry)
    field_set(dead, 'dead_at', int_str(now))
    xadd(s.dead_letter, tonumber(s.dead_letter_max_length), dead)
    field_set(failed, 'finished_at', int_str(now))
    job_record(s, id, 'dead', attempt, now, failed)
    return { 'dead', attempt }
  end
  return { retry(s, stream, fields, attempt, now, failed), attempt + 1 }
end

local function cancel(keys, args)
  local stream, s = keys[1], job_settings(keys[2])
  local id = args[1]
  local rec = derive(stream, s, id, group_name(s, args[2]))
  if not rec then return { 'missing', '' } end
  local st = rec.state
  if st == 'queued' or st == 'delayed' or st == 'retrying' then
    local now = now_ms()
    job_record(s, id, 'cancelled', rec.attempt or '1', now, { 'finished_at', int_str(now) })
    return { 'cancelled', 'cancelled' }
  end
  if st == 'active' then
    redis.call('HSET', job_key(s, id), 'cancel_requested', '1')
    return { 'requested', st }
  end
  return { 'final', st }
end

local function get(keys, args)
  local s = job_settings(keys[2])
  local rec = derive(keys[1], s, args[1], group_name(s, args[2]))
  if not rec then return false end
  return flat(rec)
end

redis.register_function{ function_name = 'jobqueue_version', flags = { 'no-writes' },
  callback = function() return VERSION end }
redis.register_function('jobqueue_enqueue', enqueue)
redis.register_function('jobqueue_take', take)
redis.register_function('jobqueue_start', start)
redis.register_function('jobqueue_progress', progress)
redis.register_function('jobqueue_heartbeat', heartbeat)
redis.register_function('jobqueue_complete', complete)
redis.register_function('jobqueue_fail', fail)
redis.register_function('jobqueue_cancel', cancel)
redis.register_function{ function_name = 'jobqueue_get', flags = { 'no-writes' },
  callback = get }
