-- Leadership fencing (engine scripts only). Each operator leadership term takes a number from
-- Redis; a queue records the newest term that served it. A janitor or scheduler pass of an
-- older term does nothing: it is a deposed leader, cut off from Kubernetes, still running.
-- `term` 0 (local mode, the CLI) is never fenced.
local function fenced(epoch_key, term)
  term = tonumber(term) or 0
  if term == 0 then return false end
  return (tonumber(redis.call('GET', epoch_key) or '0') or 0) > term
end
local FENCED = 'FENCED an operator of a newer leadership term serves this queue'
