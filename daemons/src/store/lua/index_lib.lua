-- Shared by every script that changes a task's status, prepended to it (Redis scripts cannot
-- include): the task indexes behind `GET /tasks`, the per-function statistics behind
-- `GET /functions/{id}`, and cancelling (protocol/src/keys.rs documents every key).
--
-- `root` is the key prefix with its colon ('faas:'); scripts name their keys from it, as
-- take_lib.lua does with task keys (a single Redis, what the platform supports, allows it).
-- Index scores are the task's created_at (unix ms), so every index lists newest first.

-- How many run-time and queue-wait samples each function keeps (the window of its p50/p95/p99).
local FN_SAMPLES = 1000
-- How many expired tasks one call removes from the indexes (each call adds at most one).
local EXPIRY_BATCH = 16

-- 'faas:task:<id>' -> 'faas:'
local function root_of(task_key)
  return (string.gsub(task_key, 'task:[^:]*$', ''))
end

-- Moves a task from the index of status `old` (nil: none) to that of `new`.
local function idx_move(root, id, old, new, created)
  if old and old ~= new then
    redis.call('ZREM', root .. 'tasks:status:' .. old, id)
  end
  redis.call('ZADD', root .. 'tasks:status:' .. new, created, id)
end

local function idx_worker(root, id, worker, created)
  if worker and worker ~= '' then
    redis.call('ZADD', root .. 'tasks:worker:' .. worker, created, id)
  end
end

-- A task became terminal: its index entries are dropped when its hash expires (retention
-- seconds from now; 0 keeps it for ever). Members of the expiry zset are 'task|function|worker'
-- (ids are 36 characters). Entries that are due are removed here, a bounded number per call.
local function idx_terminal(root, id, fid, worker, now, retention)
  local expiry = root .. 'tasks:expiry'
  if tonumber(retention) > 0 then
    redis.call('ZADD', expiry, tonumber(now) + tonumber(retention) * 1000,
      id .. '|' .. (fid or '') .. '|' .. (worker or ''))
  end
  local due = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, EXPIRY_BATCH)
  for _, m in ipairs(due) do
    local tid, f, w = string.sub(m, 1, 36), string.sub(m, 38, 73), string.sub(m, 75)
    -- A hash still there (clocks differ) is left listed; the listing drops it once gone.
    if redis.call('EXISTS', root .. 'task:' .. tid) == 0 then
      redis.call('ZREM', root .. 'tasks', tid)
      redis.call('ZREM', root .. 'tasks:status:COMPLETED', tid)
      redis.call('ZREM', root .. 'tasks:status:FAILED', tid)
      if f ~= '' then redis.call('ZREM', root .. 'tasks:fn:' .. f, tid) end
      if w ~= '' then redis.call('ZREM', root .. 'tasks:worker:' .. w, tid) end
    end
    redis.call('ZREM', expiry, m)
  end
end

-- A task of function `fid` ended with `status` (error JSON `err` when FAILED). Statistics of a
-- deleted function are not recreated.
local function fn_finished(root, fid, status, err, created, started, now)
  if not fid or fid == '' or redis.call('EXISTS', root .. 'fn:' .. fid) == 0 then
    return
  end
  local stats = root .. 'fnstats:' .. fid
  redis.call('HINCRBY', stats, string.lower(status), 1)
  if status == 'FAILED' then
    local ok, e = pcall(cjson.decode, err)
    local kind = (ok and type(e) == 'table' and type(e.type) == 'string') and e.type or ''
    redis.call('HSET', stats, 'last_failure_at', now, 'last_failure_type', kind)
  end
  started = tonumber(started)
  if started then
    local runs, waits = root .. 'fnruns:' .. fid, root .. 'fnwaits:' .. fid
    redis.call('LPUSH', runs, math.max(0, tonumber(now) - started))
    redis.call('LTRIM', runs, 0, FN_SAMPLES - 1)
    redis.call('LPUSH', waits, math.max(0, started - (tonumber(created) or started)))
    redis.call('LTRIM', waits, 0, FN_SAMPLES - 1)
  end
end

-- Ends a QUEUED or RUNNING task FAILED with error {type = kind, message = message}, as
-- finish.lua ends one: the record, its expiry, the counters, the indexes and the event on
-- both channels (result waiters wake); a RUNNING one's id is also published on the cancels
-- channel so that its dispatcher kills it. A cancelled QUEUED entry stays in the stream: the
-- dispatcher that takes it finds the task FAILED and drops the entry without running it.
-- Returns the status before ('MISSING' when there is no such task); only QUEUED and RUNNING
-- changed anything.
local function cancel_task(root, id, now, retention, kind, message)
  local key = root .. 'task:' .. id
  local h = redis.call('HMGET', key, 'status', 'created_at', 'function_id', 'worker')
  local st = h[1]
  if not st then return 'MISSING' end
  if st ~= 'QUEUED' and st ~= 'RUNNING' then return st end
  local err = cjson.encode({type = kind, message = message, traceback = ''})
  redis.call('HSET', key, 'status', 'FAILED', 'result', '', 'error', err, 'finished_at', now)
  if tonumber(retention) > 0 then
    redis.call('EXPIRE', key, retention)
  end
  redis.call('HINCRBY', root .. 'stats', 'failed', 1)
  redis.call('HINCRBY', root .. 'stats', 'cancelled', 1)
  local created = tonumber(h[2]) or 0
  local worker = h[4] or ''
  if st == 'QUEUED' then worker = '' end
  idx_move(root, id, st, 'FAILED', created)
  if h[3] and h[3] ~= '' and redis.call('EXISTS', root .. 'fn:' .. h[3]) == 1 then
    redis.call('HINCRBY', root .. 'fnstats:' .. h[3], 'cancelled', 1)
  end
  idx_terminal(root, id, h[3], worker, now, retention)
  local w = ''
  if worker ~= '' then w = '"worker":' .. cjson.encode(worker) .. ',' end
  local event = '{"type":"task","task_id":"' .. id .. '","status":"FAILED",' .. w ..
    '"at":' .. now .. ',"outcome":{"result":null,"error":' .. err .. '}}'
  redis.call('PUBLISH', root .. 'events', event)
  redis.call('PUBLISH', root .. 'finished', event)
  if st == 'RUNNING' then
    redis.call('PUBLISH', root .. 'cancels', id)
  end
  return st
end
