-- Shared by take.lua and finish.lua, and prepended to each after index_lib.lua (Redis scripts
-- cannot include).
--
-- take_entries reads up to #workers new queue entries for `consumer` (XREADGROUP does not
-- block inside a script), or uses `given` ({entry id, task id} pairs read earlier by a
-- blocking read), and starts each entry's task on the worker of the same position: QUEUED ->
-- RUNNING, the attempt counted, the event published. Task hashes are named from the entries
-- rather than passed in KEYS: a single Redis (what the platform supports) allows it.
-- Returns a flat list of 7 values per entry (entry id, task id or '', status before or
-- 'MISSING', attempts, function_id, args, timeout_ms) and, if the read failed, its error.
-- The caller runs a task only when the status before was QUEUED: an entry whose task was
-- cancelled while queued (FAILED) is reported as such, and the dispatcher drops it unrun.
-- The {entry id, task id} pairs of an XREADGROUP reply of one stream ('' for an entry without
-- a task, or deleted while pending); none for a nil reply (nothing to read).
local function read_entries(reply)
  local entries = {}
  if reply then
    for _, e in ipairs(reply[1][2]) do
      local task = ''
      local fields = e[2] or {}
      for j = 1, #fields, 2 do
        if fields[j] == 'task' then task = fields[j + 1] end
      end
      entries[#entries + 1] = {e[1], task}
    end
  end
  return entries
end

local function take_entries(queue, events, group, consumer, prefix, now, workers, given)
  local entries = given
  if not given then
    local reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', #workers,
      'STREAMS', queue, '>')
    if type(reply) == 'table' and reply.err then
      return {}, reply.err
    end
    entries = read_entries(reply)
  end
  local out = {}
  -- 'faas:task:' -> 'faas:', for the indexes (index_lib.lua).
  local root = string.sub(prefix, 1, #prefix - 5)
  for i, e in ipairs(entries) do
    local entry, task, worker = e[1], e[2], workers[i]
    local st, attempts, f = 'MISSING', 0, {}
    if task ~= '' then
      local key = prefix .. task
      -- One read for the status and everything the run needs.
      f = redis.call('HMGET', key, 'function_id', 'args', 'timeout_ms', 'attempts', 'created_at',
        'status')
      st = f[6] or 'MISSING'
      if st ~= 'MISSING' then
        attempts = tonumber(f[4]) or 0
        -- A function that is gone (Redis flushed under a gateway's stale cache) is reported as
        -- none, so the task is failed, never run from a dispatcher's cache. Function keys are
        -- `{p}:fn:{id}` beside task keys `{p}:task:{id}` (protocol::keys).
        if f[1] and redis.call('EXISTS', root .. 'fn:' .. f[1]) == 0 then
          f[1] = ''
        end
      end
      if st == 'QUEUED' then
        -- The script runs atomically, so the count read above is the one to increment.
        attempts = attempts + 1
        redis.call('HSET', key, 'status', 'RUNNING', 'worker', worker, 'started_at', now,
          'attempts', attempts)
        redis.call('PUBLISH', events, '{"type":"task","task_id":"' .. task ..
          '","status":"RUNNING","worker":' .. cjson.encode(worker) .. ',"at":' .. now .. '}')
        -- [indexes] listed under its worker (index_lib.lua); QUEUED and RUNNING have no index
        -- to move between: both are the queue's entries.
        idx_worker(root, task, worker, tonumber(f[5]) or 0)
      end
    end
    local row = {entry, task, st, tostring(attempts), f[1] or '', f[2] or '', f[3] or ''}
    for _, v in ipairs(row) do out[#out + 1] = v end
  end
  return out, nil
end
