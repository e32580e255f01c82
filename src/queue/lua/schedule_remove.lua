-- Removes a schedule: its armed run and its hash, atomically.
-- KEYS[1] schedules zset, KEYS[2] schedule hash; ARGV[1] name. Returns how many keys went away.
return redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('DEL', KEYS[2])
