-- Hand out again the jobs whose delivery failed: pending longer than the visibility timeout,
-- or (ARGV[6] set) what one consumer holds (everything, or what it read before its worker
-- restarted). Each job is re-enqueued with attempt+1 (through the delayed set when a backoff
-- applies) or, after its last allowed attempt, moved to the dead-letter stream; then the old
-- entry is acknowledged. All in one atomic step, so a crash between calls neither loses nor
-- duplicates a job.
-- KEYS[1] stream, KEYS[2] delayed zset, KEYS[3] dead-letter stream
-- ARGV[1] group, ARGV[2] min idle ms, ARGV[3] max deliveries, ARGV[4] max jobs per call,
-- ARGV[5] dead-letter MAXLEN (0 = none), ARGV[6] consumer ('' = any),
-- ARGV[7] why the delivery failed ('visibility_timeout' | 'consumer_gone' | 'worker_restarted'),
-- ARGV[8] the queue's schedule hash prefix (see schedule_of_last_run),
-- ARGV[9] '1': delete the consumer once it holds nothing (its pod is gone), else keep it,
-- ARGV[10] the leadership term (see fence.lua),
-- ARGV[11..] backoff delay ms after attempt 1, 2, ... (none = retry at once),
-- KEYS[4] the queue's settings hash (job records are updated when it exists),
-- KEYS[5] the queue's leadership epoch
-- Returns {retried, dead_lettered, missing (entry deleted out of band), scanned}
local stream, delayed, dead = KEYS[1], KEYS[2], KEYS[3]
local group = ARGV[1]
local max_deliveries = tonumber(ARGV[3])
local dead_maxlen = tonumber(ARGV[5])
local consumer = ARGV[6]
local why = ARGV[7]
-- Most passes find nothing to hand out: they read the pending entries and stop there (the
-- fence and the clock matter only to a pass that writes).
local cmd = { 'XPENDING', stream, group, 'IDLE', ARGV[2], '-', '+', ARGV[4] }
if consumer ~= '' then cmd[#cmd + 1] = consumer end
local pending, err = stream_call(stream, cmd)
if err then return err end
local forget = consumer ~= '' and ARGV[9] == '1' and #pending < tonumber(ARGV[4])
if #pending == 0 and not forget then return { 0, 0, 0, 0 } end
if fenced(KEYS[5], ARGV[10]) then return redis.error_reply(FENCED) end
local now = now_ms()
local settings = job_settings(KEYS[4])
local retried, dead_lettered, missing = 0, 0, 0
for _, p in ipairs(pending) do
  local id, owner = p[1], p[2]
  local entry = redis.call('XRANGE', stream, id, id)
  if #entry == 0 then
    missing = missing + 1
  else
    local fields = entry[1][2]
    local attempt, raw = parse_attempt(fields)
    if not attempt then
      dead_letter_malformed(stream, group, id, fields, dead, dead_maxlen, raw, now, settings)
      dead_lettered = dead_lettered + 1
    elseif attempt >= max_deliveries then
      field_set(fields, 'reason', 'max_deliveries_exceeded')
      field_set(fields, 'last_failure', why)
      field_set(fields, 'last_consumer', owner)
      field_set(fields, 'original_id', id)
      field_set(fields, 'dead_at', int_str(now))
      xadd(dead, dead_maxlen, fields)
      job_record(settings, field_get(fields, 'id'), 'dead', attempt, now, { 'entry', '',
        'consumer', '', 'finished_at', int_str(now), 'error', 'delivery failed: ' .. why })
      dead_lettered = dead_lettered + 1
    else
      field_set(fields, 'attempt', int_str(attempt + 1))
      local delay = tonumber(ARGV[10 + attempt] or '0') or 0
      local job = field_get(fields, 'id')
      local failed = { 'consumer', '', 'error', 'delivery failed: ' .. why }
      if delay > 0 then
        local member = fields_to_member(fields)
        redis.call('ZADD', delayed, now + delay, member)
        local key = schedule_of_last_run(ARGV[8], fields)
        if key then redis.call('HSET', key, 'last_retry_member', member) end
        field_set(failed, 'entry', '')
        field_set(failed, 'due', int_str(now + delay))
        job_record(settings, job, 'retrying', attempt + 1, now, failed, { due = now + delay })
      else
        local entry = redis.call('XADD', stream, '*', unpack(fields))
        follow_to_entry(ARGV[8], fields, entry)
        field_set(failed, 'entry', entry)
        job_record(settings, job, 'queued', attempt + 1, now, failed)
      end
      retried = retried + 1
    end
  end
  redis.call('XACK', stream, group, id)
end
if forget then
  -- The consumer holds nothing any more: forget it (its pod is gone). A restarted worker's
  -- consumer is kept: the worker reads as it, and deleting a consumer drops what it holds.
  redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer)
end
return { retried, dead_lettered, missing, #pending }
