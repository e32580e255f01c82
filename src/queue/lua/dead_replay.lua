-- Move dead letters back into the stream with attempt reset to 1, each exactly once (the
-- XADD and the XDEL happen together). Malformed delayed members (no payload) are skipped.
-- KEYS[1] dead-letter stream, KEYS[2] stream
-- ARGV[1] max entries per call, ARGV[2..] dead-letter entry ids (none = the oldest ones),
-- KEYS[3] the queue's settings hash (optional: each replayed job gets a fresh record)
-- Returns {replayed, skipped, remaining in the dead-letter stream, {new entry ids}}
local err = require_stream(KEYS[2])
if err then return err end
local META = { reason = true, last_failure = true, last_consumer = true, original_id = true,
               dead_at = true, detail = true, raw = true, last_error = true }
local entries = {}
if #ARGV >= 2 then
  for i = 2, #ARGV do
    local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #e > 0 then entries[#entries + 1] = e[1] end
  end
else
  entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[1]))
end
local settings = job_settings(KEYS[3])
local now = now_ms()
local replayed, skipped, ids = 0, 0, {}
for _, e in ipairs(entries) do
  local fields = e[2]
  if field_get(fields, 'payload') == nil then
    skipped = skipped + 1
  else
    local job = fields_without(fields, META)
    field_set(job, 'attempt', '1')
    ids[#ids + 1] = redis.call('XADD', KEYS[2], '*', unpack(job))
    job_record(settings, field_get(job, 'id'), 'queued', 1, now,
      { 'enqueued_at', field_get(job, 'enqueued_at') or int_str(now), 'entry', ids[#ids] },
      { fresh = true })
    redis.call('XDEL', KEYS[1], e[1])
    replayed = replayed + 1
  end
end
local remaining = 0
if stream_type(KEYS[1]) == 'stream' then remaining = redis.call('XLEN', KEYS[1]) end
return { replayed, skipped, remaining, ids }
