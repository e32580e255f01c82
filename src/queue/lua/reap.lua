-- Delete consumers that hold no pending job and have been idle at least ARGV[2] ms.
-- KEYS[1] stream, KEYS[2] the queue's leadership epoch; ARGV[1] group, ARGV[2] min idle ms,
-- ARGV[3] the leadership term (see fence.lua)
-- Returns the number of consumers deleted.
if fenced(KEYS[2], ARGV[3]) then return redis.error_reply(FENCED) end
local err = require_stream(KEYS[1])
if err then return err end
local deleted = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local m = to_map(c)
  if tonumber(m['pending']) == 0 and tonumber(m['idle']) >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], m['name'])
    deleted = deleted + 1
  end
end
return deleted
