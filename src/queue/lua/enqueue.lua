-- Add one job, now or delayed, at most once per idempotency key.
-- KEYS[1] stream, KEYS[2] delayed zset, KEYS[3] idempotency key (ignored unless ARGV[5] == '1'),
-- KEYS[4] the queue's settings hash (optional: its job record is written when given)
-- ARGV[1] job id, ARGV[2] payload (JSON text), ARGV[3] due unix ms (0 = now; '+N' = N ms
-- from now on the server clock),
-- ARGV[4] idempotency TTL ms, ARGV[5] use idempotency ('1'/'0'), then extra field pairs
-- Returns {job id, 1 if added / 0 if the key already named a job, stream entry id or ''}
local use_idem = ARGV[5] == '1'
if use_idem then
  local prev = redis.call('GET', KEYS[3])
  if prev then return { prev, 0, '' } end
end
local err = require_stream(KEYS[1])
if err then return err end
local now = now_ms()
local fields = { 'id', ARGV[1], 'payload', ARGV[2], 'enqueued_at', int_str(now), 'attempt', '1' }
for i = 6, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
end
local due
if string.sub(ARGV[3], 1, 1) == '+' then
  due = now + tonumber(string.sub(ARGV[3], 2))
else
  due = tonumber(ARGV[3])
end
local entry = ''
if due > now then
  redis.call('ZADD', KEYS[2], due, fields_to_member(fields))
else
  entry = redis.call('XADD', KEYS[1], '*', unpack(fields))
end
job_record(job_settings(KEYS[4]), ARGV[1], entry == '' and 'delayed' or 'queued', 1, now,
  { 'enqueued_at', int_str(now), 'entry', entry, 'due', entry == '' and int_str(due) or '' },
  { fresh = true, due = due })
if use_idem then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[4])
end
return { ARGV[1], 1, entry }
