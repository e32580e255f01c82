-- Writes a schedule's definition and arms its next run, atomically.
-- KEYS[1] schedules zset, KEYS[2] schedule hash
-- ARGV: name, cron, tz, payload, generation, suspend (0|1), misfire_policy,
--       concurrency_policy, starting_deadline_ms ('' = none), candidate_next_ms ('' = never)
-- Every upsert bumps the hash's `revision`, which the fire script compares, so a scheduler
-- never fires with a definition older than the one stored.
-- Returns {status, score}: 'kept' (same cron and zone: the armed run stays, so an update never
-- fires a run twice nor drops one), 'armed', 'suspended', 'never', or 'behind' (the candidate is
-- not after the last fired run; the caller recomputes from that run, given as score).
local name = ARGV[1]
local old = redis.call('HMGET', KEYS[2], 'cron', 'tz', 'last_schedule_time')
redis.call('HINCRBY', KEYS[2], 'revision', 1)
redis.call('HSET', KEYS[2],
  'cron', ARGV[2], 'tz', ARGV[3], 'payload', ARGV[4], 'generation', ARGV[5],
  'suspend', ARGV[6], 'misfire_policy', ARGV[7], 'concurrency_policy', ARGV[8],
  'starting_deadline_ms', ARGV[9])
if ARGV[6] == '1' then
  redis.call('ZREM', KEYS[1], name)
  redis.call('HSET', KEYS[2], 'next_schedule_time', '')
  return {'suspended', ''}
end
local current = redis.call('ZSCORE', KEYS[1], name)
if current and old[1] == ARGV[2] and old[2] == ARGV[3] then
  return {'kept', current}
end
if ARGV[10] == '' then
  redis.call('ZREM', KEYS[1], name)
  redis.call('HSET', KEYS[2], 'next_schedule_time', '')
  return {'never', ''}
end
local last = tonumber(old[3])
if last and tonumber(ARGV[10]) <= last then
  return {'behind', old[3]}
end
redis.call('ZADD', KEYS[1], ARGV[10], name)
redis.call('HSET', KEYS[2], 'next_schedule_time', ARGV[10])
return {'armed', ARGV[10]}
