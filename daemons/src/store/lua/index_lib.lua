-- Shared by every script that changes a task's status, prepended to it (Redis scripts cannot
-- include): the task indexes behind `GET /tasks`, the per-function statistics behind
-- `GET /functions/{id}`, and cancelling (protocol/src/keys.rs documents every key).
--
-- Every write here is paid by every task on the hot path, so the indexes are the fewest that
-- keep a page of `GET /tasks` O(log n + page) (daemons/src/store/tasks.rs says how each status
-- is listed): all tasks, per function, per worker, and FAILED (failures are sparse among
-- successes). QUEUED and RUNNING tasks are the queue stream's entries already (new and
-- pending ones), and COMPLETED ones are nearly every task, so a walk of the other indexes
-- finds them; none of those pays an index write.
--
-- `root` is the key prefix with its colon ('faas:'); scripts name their keys from it, as
-- take_lib.lua does with task keys (a single Redis, what the platform supports, allows it).
-- Index scores are the task's created_at (unix ms), so every index lists newest first.

-- How many run-time and queue-wait samples each function keeps (the window of its p50/p95/p99).
local FN_SAMPLES = 1000
-- The samples list is trimmed back to FN_SAMPLES only once it holds this many more, so that
-- a finish pays one LPUSH, and an LTRIM once in FN_SLACK finishes.
local FN_SLACK = 100
-- Expired tasks leave the indexes in a sweep run by one terminal status change in SWEEP_EVERY
-- (counted by the platform's stats counters), which removes up to SWEEP_BATCH of them: eight
-- times the rate at which tasks become terminal, so the sweep keeps up with any load.
-- The expiry log is a list in the order tasks ended, `deadline|task|function|worker` each
-- (ids are 36 characters): appending is O(1), and as every daemon of a platform has the same
-- retention, deadlines come in order, so the due ones are at its head. (A retention made
-- longer then shorter leaves later deadlines behind an earlier one until that one is due:
-- those tasks leave the indexes late, and listings skip them meanwhile.)
local SWEEP_EVERY = 8
local SWEEP_BATCH = 64

-- 'faas:task:<id>' -> 'faas:'
local function root_of(task_key)
  return (string.sub(task_key, 1, #task_key - 41))
end

-- A task ended FAILED: the one status with an index (see the top of this file). Nothing
-- leaves it but by expiry, since FAILED is final.
local function idx_failed(root, id, created)
  redis.call('ZADD', root .. 'tasks:status:FAILED', created, id)
end

local function idx_worker(root, id, worker, created)
  if worker and worker ~= '' then
    redis.call('ZADD', root .. 'tasks:worker:' .. worker, created, id)
  end
end

-- A task became terminal: its index entries are dropped when its hash expires (retention
-- seconds from now; 0 keeps it for ever). `tick` is a counter that moves by one per terminal
-- change (a stats counter's new value): due entries are swept when it is a multiple of
-- SWEEP_EVERY.
local function idx_terminal(root, id, fid, worker, now, retention, tick)
  local log = root .. 'tasks:expiring'
  if tonumber(retention) > 0 then
    redis.call('RPUSH', log, (tonumber(now) + tonumber(retention) * 1000) .. '|' .. id .. '|' ..
      (fid or '') .. '|' .. (worker or ''))
  end
  if tick % SWEEP_EVERY ~= 0 then return end
  local head = redis.call('LRANGE', log, 0, SWEEP_BATCH - 1)
  local n = 0
  for _, m in ipairs(head) do
    local bar = string.find(m, '|', 1, true)
    if not bar or (tonumber(string.sub(m, 1, bar - 1)) or 0) > tonumber(now) then break end
    n = n + 1
    local tid = string.sub(m, bar + 1, bar + 36)
    local f, w = string.sub(m, bar + 38, bar + 73), string.sub(m, bar + 75)
    local ttl = redis.call('PTTL', root .. 'task:' .. tid)
    if ttl == -2 then
      redis.call('ZREM', root .. 'tasks', tid)
      redis.call('ZREM', root .. 'tasks:status:FAILED', tid)
      if f ~= '' then redis.call('ZREM', root .. 'tasks:fn:' .. f, tid) end
      if w ~= '' then redis.call('ZREM', root .. 'tasks:worker:' .. w, tid) end
    elseif ttl > 0 then
      -- Still there (the deadline came from a daemon's clock ahead of Redis'): due again
      -- when Redis expires it.
      redis.call('RPUSH', log, (tonumber(now) + ttl) .. '|' .. string.sub(m, bar + 1))
    end
  end
  if n > 0 then
    redis.call('LTRIM', log, n, -1)
  end
end

-- A task of function `fid` ended with `status` (error JSON `err` when FAILED). Statistics of a
-- deleted function are not recreated. A run's sample is 'run_ms:wait_ms' (wait: created ->
-- started), newest first.
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
    local samples = root .. 'fnsamples:' .. fid
    local n = redis.call('LPUSH', samples, math.max(0, tonumber(now) - started) .. ':' ..
      math.max(0, started - (tonumber(created) or started)))
    if n > FN_SAMPLES + FN_SLACK then
      redis.call('LTRIM', samples, 0, FN_SAMPLES - 1)
    end
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
  local tick = redis.call('HINCRBY', root .. 'stats', 'failed', 1)
  redis.call('HINCRBY', root .. 'stats', 'cancelled', 1)
  local created = tonumber(h[2]) or 0
  local worker = h[4] or ''
  if st == 'QUEUED' then worker = '' end
  idx_failed(root, id, created)
  if h[3] and h[3] ~= '' and redis.call('EXISTS', root .. 'fn:' .. h[3]) == 1 then
    redis.call('HINCRBY', root .. 'fnstats:' .. h[3], 'cancelled', 1)
  end
  idx_terminal(root, id, h[3], worker, now, retention, tick)
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
