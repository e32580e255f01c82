-- Move due delayed jobs into the stream. A member that is not a usable job goes to the
-- dead-letter stream with the raw text, so nothing is silently dropped.
-- KEYS[1] delayed zset, KEYS[2] stream, KEYS[3] dead-letter stream
-- ARGV[1] max jobs per call, ARGV[2] dead-letter MAXLEN (0 = none),
-- ARGV[3] the queue's schedule hash prefix (see schedule_of_last_run),
-- KEYS[4] the queue's settings hash (optional: job records are updated when given; a job whose
-- record says cancelled is dropped instead of promoted), KEYS[5] the queue's leadership epoch,
-- ARGV[4] the leadership term (see fence.lua)
-- Returns {promoted, malformed, due jobs still waiting}
-- Most passes find nothing due: they read the clock and the delayed set and stop there (the
-- fence, the stream check and the settings matter only to a pass that writes).
local now = now_ms()
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
if #due == 0 then return { 0, 0, 0 } end
if fenced(KEYS[5], ARGV[4]) then return redis.error_reply(FENCED) end
local err = require_stream(KEYS[2])
if err then return err end
local settings = job_settings(KEYS[4])
local promoted, malformed = 0, 0
for _, member in ipairs(due) do
  local fields, why = member_to_fields(member, now)
  if fields and job_cancelled(settings, field_get(fields, 'id')) then
    -- Cancelled while it waited: dropped, never handed out.
  elseif fields then
    local entry = redis.call('XADD', KEYS[2], '*', unpack(fields))
    follow_to_entry(ARGV[3], fields, entry)
    job_record(settings, field_get(fields, 'id'), 'queued', field_get(fields, 'attempt'), now,
      { 'entry', entry, 'due', '' })
    promoted = promoted + 1
  else
    xadd(KEYS[3], tonumber(ARGV[2]), {
      'reason', 'malformed_delayed_job', 'detail', why, 'raw', member, 'dead_at', int_str(now) })
    malformed = malformed + 1
  end
  redis.call('ZREM', KEYS[1], member)
end
return { promoted, malformed, redis.call('ZCOUNT', KEYS[1], '-inf', now) }
