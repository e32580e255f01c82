-- Claim the stream for its JobQueue, then create the consumer group (and the stream) if
-- missing; never touches existing data.
-- KEYS[1] stream, KEYS[2] owner hash (`queue` = namespace/name, `uid`)
-- ARGV[1] group, ARGV[2] start id for a group created on a new stream,
-- ARGV[3] start id for a group created on an existing stream,
-- ARGV[4] the claiming JobQueue (namespace/name; empty: no claim), ARGV[5] its uid,
-- KEYS[3] the queue's leadership epoch, ARGV[6] the leadership term provisioning it (0: none),
-- KEYS[4] the owner hash of the dead-letter stream (claimed with the stream: another queue may
-- name neither this queue's stream nor its dead letters, as its stream or its dead letters)
-- Returns {stream_existed, group_existed, stream_length}, or the error `CLAIMED <owner>` when
-- another JobQueue owns the stream (then nothing is changed).
-- A newer leadership term serves the queue: this (deposed) operator changes nothing. Else the
-- queue records this term, fencing out older ones (see fence.lua).
if fenced(KEYS[3], ARGV[6]) then return redis.error_reply(FENCED) end
if tonumber(ARGV[6]) > 0 then redis.call('SET', KEYS[3], ARGV[6]) end
if ARGV[4] ~= '' then
  for _, key in ipairs({ KEYS[2], KEYS[4] }) do
    local owner = redis.call('HGET', key, 'queue')
    if owner and owner ~= ARGV[4] then
      return redis.error_reply('CLAIMED ' .. owner)
    end
  end
  -- A JobQueue recreated under the same name is the same owner: it takes the new uid.
  for _, key in ipairs({ KEYS[2], KEYS[4] }) do
    redis.call('HSET', key, 'queue', ARGV[4], 'uid', ARGV[5])
  end
end
local t = stream_type(KEYS[1])
if t ~= 'none' and t ~= 'stream' then
  return redis.error_reply('WRONGTYPE key ' .. KEYS[1] .. ' holds a ' .. t .. ', not a stream')
end
local stream_existed = t == 'stream'
local group_existed = false
if stream_existed then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    if to_map(g)['name'] == ARGV[1] then group_existed = true end
  end
end
if not group_existed then
  local start = stream_existed and ARGV[3] or ARGV[2]
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], start, 'MKSTREAM')
end
return { stream_existed and 1 or 0, group_existed and 1 or 0, redis.call('XLEN', KEYS[1]) }
