-- Move due delayed jobs into the stream. A member that is not a usable job goes to the
-- dead-letter stream with the raw text, so nothing is silently dropped.
-- KEYS[1] delayed zset, KEYS[2] stream, KEYS[3] dead-letter stream
-- ARGV[1] max jobs per call, ARGV[2] dead-letter MAXLEN (0 = none),
-- ARGV[3] the queue's schedule hash prefix (see schedule_of_last_run)
-- Returns {promoted, malformed, due jobs still waiting}
local err = require_stream(KEYS[2])
if err then return err end
local now = now_ms()
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
local promoted, malformed = 0, 0
for _, member in ipairs(due) do
  local fields, why = member_to_fields(member, now)
  if fields then
    follow_to_entry(ARGV[3], fields, redis.call('XADD', KEYS[2], '*', unpack(fields)))
    promoted = promoted + 1
  else
    xadd(KEYS[3], tonumber(ARGV[2]), {
      'reason', 'malformed_delayed_job', 'detail', why, 'raw', member, 'dead_at', int_str(now) })
    malformed = malformed + 1
  end
  redis.call('ZREM', KEYS[1], member)
end
return { promoted, malformed, redis.call('ZCOUNT', KEYS[1], '-inf', now) }
