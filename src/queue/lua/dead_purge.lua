-- Delete the dead-letter stream. KEYS[1] dead-letter stream. Returns the entries removed.
local t = stream_type(KEYS[1])
if t == 'none' then return 0 end
if t ~= 'stream' then
  return redis.error_reply('WRONGTYPE key ' .. KEYS[1] .. ' holds a ' .. t .. ', not a stream')
end
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
