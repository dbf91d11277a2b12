-- Puts a task whose worker or dispatcher was lost back on the queue, or fails it once it has
-- used up its attempts. Only a RUNNING (or QUEUED) task moves; terminal ones stay as they are.
-- KEYS[1]: task hash  KEYS[2]: stats hash  KEYS[3]: events channel  KEYS[4]: queue stream
-- KEYS[5]: finished channel (terminal events only, for result waiters)
-- ARGV[1]: task id  ARGV[2]: why (text)  ARGV[3]: now (unix ms)  ARGV[4]: retention seconds
-- ARGV[5]: consumer group  ARGV[6]: old stream entry id ('' = none)
-- Returns: 'QUEUED' (re-added to the queue), 'FAILED' (attempts used up), or the status left alone.
if ARGV[6] ~= '' then
  redis.call('XACK', KEYS[4], ARGV[5], ARGV[6])
  redis.call('XDEL', KEYS[4], ARGV[6])
end
local st = redis.call('HGET', KEYS[1], 'status')
if not st then
  return 'MISSING'
end
if st == 'COMPLETED' or st == 'FAILED' then
  return st
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts')) or 0
local max = tonumber(redis.call('HGET', KEYS[1], 'max_attempts')) or 3
if attempts >= max then
  local err = cjson.encode({type = 'WorkerLost', message = 'worker lost ' .. attempts ..
    ' time(s), the limit of ' .. max .. ' attempts: ' .. ARGV[2], traceback = ''})
  redis.call('HSET', KEYS[1], 'status', 'FAILED', 'result', '', 'error', err, 'finished_at', ARGV[3])
  if tonumber(ARGV[4]) > 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[4])
  end
  local tick = redis.call('HINCRBY', KEYS[2], 'failed', 1)
  local event = '{"type":"task","task_id":"' .. ARGV[1] .. '","status":"FAILED","at":' ..
    ARGV[3] .. '}'
  redis.call('PUBLISH', KEYS[3], event)
  redis.call('PUBLISH', KEYS[5], event)
  -- [indexes and function statistics] (index_lib.lua, prepended)
  local root = root_of(KEYS[1])
  local r = redis.call('HMGET', KEYS[1], 'created_at', 'function_id', 'started_at', 'worker')
  local created = tonumber(r[1]) or 0
  idx_failed(root, ARGV[1], created)
  fn_finished(root, r[2], 'FAILED', err, created, r[3], ARGV[3])
  idx_terminal(root, ARGV[1], r[2], r[4], ARGV[3], ARGV[4], tick)
  return 'FAILED'
end
-- [indexes] none to change: a QUEUED task is listed from its queue entry (index_lib.lua).
redis.call('HSET', KEYS[1], 'status', 'QUEUED', 'worker', '')
redis.call('XADD', KEYS[4], '*', 'task', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'requeued', 1)
redis.call('PUBLISH', KEYS[3], '{"type":"task","task_id":"' .. ARGV[1] ..
  '","status":"QUEUED","at":' .. ARGV[3] .. '}')
return 'QUEUED'
