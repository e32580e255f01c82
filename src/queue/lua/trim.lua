-- Retention: remove the oldest entries beyond maxLength / older than maxAge, but never one that
-- any consumer group still needs: the floor is the minimum over all groups of the oldest
-- pending id and the first undelivered id. Without any group nothing is trimmed (nobody can
-- say what was consumed).
-- KEYS[1] stream; ARGV[1] max length (-1 = none), ARGV[2] max age ms (-1 = none),
-- ARGV[3] max entries removed per call; KEYS[2] the queue's leadership epoch, ARGV[4] the
-- leadership term (see fence.lua)
-- Returns {removed, blocked (1 if the floor stopped trimming)}
if fenced(KEYS[2], ARGV[4]) then return redis.error_reply(FENCED) end
local stream = KEYS[1]
local max_len, max_age, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if stream_type(stream) ~= 'stream' then return { 0, 0 } end
local groups = redis.call('XINFO', 'GROUPS', stream)
if #groups == 0 then return { 0, 1 } end
local floor = nil
for _, g in ipairs(groups) do
  local m = to_map(g)
  local summary = redis.call('XPENDING', stream, m['name'])
  if tonumber(summary[1]) > 0 then floor = id_min(floor, summary[2]) end
  local nxt = redis.call('XRANGE', stream, '(' .. m['last-delivered-id'], '+', 'COUNT', 1)
  if #nxt > 0 then floor = id_min(floor, nxt[1][1]) end
end
local len = redis.call('XLEN', stream)
local over = 0
if max_len >= 0 and len > max_len then over = len - max_len end
local age_cut = nil
if max_age >= 0 then age_cut = int_str(now_ms() - max_age) .. '-0' end
-- Entry i (1-based from the head) is wanted gone by the length or the age rule; it is needed
-- while it is at or above the floor. Rules and floor each cut a prefix, so walk the head.
local function wanted(i, id)
  return i <= over or (age_cut ~= nil and id_cmp(id, age_cut) < 0)
end
local function needed(id)
  return floor ~= nil and id_cmp(id, floor) >= 0
end
local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #head == 0 or not wanted(1, head[1][1]) then return { 0, 0 } end
if needed(head[1][1]) then return { 0, 1 } end
local page = redis.call('XRANGE', stream, '-', '+', 'COUNT', limit + 1)
local cut, blocked = nil, 0
for i, e in ipairs(page) do
  if i > limit or not wanted(i, e[1]) then
    cut = e[1]
    break
  end
  if needed(e[1]) then
    cut = e[1]
    blocked = 1
    break
  end
end
if cut == nil then
  -- Every entry may go: cut just above the last one (MINID keeps ids >= cut).
  local ms, seq = string.match(page[#page][1], '^(%d+)-(%d+)$')
  cut = ms .. '-' .. int_str(tonumber(seq) + 1)
end
return { redis.call('XTRIM', stream, 'MINID', cut), blocked }
