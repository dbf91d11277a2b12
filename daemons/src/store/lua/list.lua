-- One page of `GET /tasks`, newest first. Read-mostly: entries whose task hash is gone are
-- dropped from the walked index on the way (expiry normally removes them, see index_lib.lua).
-- KEYS: the candidate indexes (zsets scored by created_at): one per filter given, or the index
--   of all tasks. The smallest is walked; the other filters are checked on each task's hash,
--   so filters combine at the cost of the most selective one.
-- ARGV[1]: task key prefix ('faas:task:')  ARGV[2]: status filter ('' = any)
-- ARGV[3]: function id filter  ARGV[4]: worker filter  ARGV[5]: since (created_at >= , ms; '' = none)
-- ARGV[6]: limit  ARGV[7], ARGV[8]: the cursor, score and task id of the last task of the
--   previous page ('' = from the newest)  ARGV[9]: the most entries one call examines
-- ARGV[10]: 'index' to walk the indexes in KEYS; 'queued' to walk the queue stream KEYS[1]
--   newest entry first for QUEUED tasks, the cursor then being ('q', the last entry examined)
--   in ARGV[7], ARGV[8]; or 'running' to list RUNNING tasks from the stream's pending entries
--   for the consumer group ARGV[11] (neither status has an index: a queued task is an entry,
--   a running one a pending entry, and there are at most as many of those as busy processes,
--   so they are all read and sorted, up to ARGV[9])
-- Returns {next score, next task id ('' when the walk reached the end), then 12 values per
--   task: id, status, function_id, function_name, worker, attempts, max_attempts, created_at,
--   started_at, finished_at, error, retry_of}. A page may hold fewer than `limit` tasks when it
--   examined ARGV[9] entries first: the cursor then continues after the last one examined.
local prefix, want_st, want_fn, want_w = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local since = tonumber(ARGV[5])
local limit, max = tonumber(ARGV[6]), tonumber(ARGV[9])
local cs, cm = tonumber(ARGV[7]), ARGV[8]
local FIELDS = {'status', 'function_id', 'function_name', 'worker', 'attempts', 'max_attempts',
  'created_at', 'started_at', 'finished_at', 'error', 'retry_of'}

local function wanted(h)
  return h[1] and (want_st == '' or h[1] == want_st) and (want_fn == '' or h[2] == want_fn)
    and (want_w == '' or h[4] == want_w)
end

-- A task's listed fields (FIELDS), read from its hash; h[1] is false when it is gone.
local function read(id)
  return redis.call('HMGET', prefix .. id, unpack(FIELDS))
end

-- Appends one task's row to the reply.
local function add(out, id, h)
  out[#out + 1] = id
  for j = 1, 11 do out[#out + 1] = h[j] or '' end
end

-- How many entries the next read of a walk asks for.
local function chunk(found, examined)
  return math.min(math.max(limit - found, 16) * 2, max - examined)
end

-- The task id of a stream entry.
local function entry_task(e)
  local fields = (e and e[2]) or {}
  for j = 1, #fields, 2 do
    if fields[j] == 'task' then return fields[j + 1] end
  end
  return nil
end

if ARGV[10] == 'queued' then
  local out, found, examined, last, ended = {'', ''}, 0, 0, nil, false
  local start = cm ~= '' and ('(' .. cm) or '+'
  -- Entry ids are Redis' clock at submission, created_at the gateway's: `since` stops the
  -- walk only well past it, and is checked on each task.
  local stop = since and (since - 300000) or nil
  while found < limit and examined < max and not ended do
    local page = redis.call('XREVRANGE', KEYS[1], start, '-', 'COUNT', chunk(found, examined))
    if #page == 0 then ended = true break end
    for _, e in ipairs(page) do
      if stop and (tonumber(string.match(e[1], '^(%d+)')) or 0) < stop then
        ended = true
        break
      end
      examined = examined + 1
      last = e[1]
      start = '(' .. e[1]
      local id = entry_task(e)
      if id then
        local h = read(id)
        if h[1] == 'QUEUED' and wanted(h) and (not since or (tonumber(h[7]) or 0) >= since) then
          add(out, id, h)
          found = found + 1
          if found == limit then break end
        end
      end
      if examined >= max then break end
    end
  end
  if not ended and last then
    out[1], out[2] = 'q', last
  end
  return out
end

if ARGV[10] == 'running' then
  local rows = {}
  local pending = redis.pcall('XPENDING', KEYS[1], ARGV[11], '-', '+', max)
  if type(pending) ~= 'table' or pending.err then pending = {} end
  for _, p in ipairs(pending) do
    local id = entry_task(redis.call('XRANGE', KEYS[1], p[1], p[1])[1])
    if id then
      local h = read(id)
      local at = tonumber(h[7]) or 0
      local after = not cs or at < cs or (at == cs and id < cm)
      if wanted(h) and after and (not since or at >= since) then
        rows[#rows + 1] = {at, id, h}
      end
    end
  end
  table.sort(rows, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    return a[2] > b[2]
  end)
  local out = {'', ''}
  for i = 1, math.min(limit, #rows) do
    add(out, rows[i][2], rows[i][3])
  end
  if #rows > limit then
    out[1], out[2] = tostring(rows[limit][1]), rows[limit][2]
  end
  return out
end

local base, best = KEYS[1], redis.call('ZCARD', KEYS[1])
for i = 2, #KEYS do
  local n = redis.call('ZCARD', KEYS[i])
  if n < best then base, best = KEYS[i], n end
end
local start, skip = 0, false
if cm ~= '' then
  local sc = redis.call('ZSCORE', base, cm)
  if sc and tonumber(sc) == cs then
    start = redis.call('ZREVRANK', base, cm) + 1
  else
    -- The cursor's task left this index: start at its score, skipping what sorts before it.
    start = redis.call('ZCOUNT', base, '(' .. ARGV[7], '+inf')
    skip = true
  end
end
local out, found, examined, gone = {'', ''}, 0, 0, {}
local last_s, last_m, ended = nil, nil, false
while found < limit and examined < max do
  local page = redis.call('ZREVRANGE', base, start, start + chunk(found, examined) - 1,
    'WITHSCORES')
  if #page == 0 then ended = true break end
  start = start + #page / 2
  for i = 1, #page, 2 do
    local m, s = page[i], tonumber(page[i + 1])
    if since and s < since then ended = true break end
    examined = examined + 1
    if skip and s == cs and m >= cm then
      -- sorts before the cursor: seen on the previous page
    else
      skip = false
      last_s, last_m = page[i + 1], m
      local h = read(m)
      if not h[1] then
        gone[#gone + 1] = m
      elseif wanted(h) then
        add(out, m, h)
        found = found + 1
        if found == limit then break end
      end
    end
    if examined >= max then break end
  end
  if ended then break end
end
for _, m in ipairs(gone) do redis.call('ZREM', base, m) end
if not ended and last_m then
  out[1], out[2] = last_s, last_m
end
return out
