-- Add one job, now or delayed, at most once per idempotency key (enqueue_job in common.lua;
-- the function library's jobqueue_enqueue is the same for clients).
-- KEYS[1] stream, KEYS[2] delayed zset, KEYS[3] idempotency key (ignored unless ARGV[5] == '1'),
-- KEYS[4] the queue's settings hash (optional: its job record is written when given)
-- ARGV[1] job id, ARGV[2] payload (JSON text), ARGV[3] due unix ms (0 = now; '+N' = N ms
-- from now on the server clock),
-- ARGV[4] idempotency TTL ms, ARGV[5] use idempotency ('1'/'0'), then extra field pairs
-- Returns {job id, 1 if added / 0 if the key already named a job, stream entry id or ''}
return enqueue_job(KEYS[1], KEYS[2], ARGV[5] == '1' and KEYS[3] or nil, job_settings(KEYS[4]),
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV, 6)
