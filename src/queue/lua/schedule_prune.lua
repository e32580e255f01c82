-- Drops a zset entry whose schedule hash no longer exists (left behind by a hand edit or a
-- partial restore), so the scheduler does not keep waking for it. Checked atomically: a
-- schedule upserted meanwhile is left alone.
-- KEYS[1] schedules zset, KEYS[2] schedule hash; ARGV[1] name
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return redis.call('ZREM', KEYS[1], ARGV[1])
