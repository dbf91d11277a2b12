-- Moves a task QUEUED -> RUNNING, counts the attempt and publishes the change.
-- KEYS[1]: task hash  KEYS[2]: events channel
-- ARGV[1]: task id  ARGV[2]: worker name  ARGV[3]: now (unix ms)
-- Returns: {status before, attempts, function_id, args, timeout_ms}; the caller runs the task
-- only when the status before was QUEUED. A missing task returns {"MISSING"}.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then
  return {'MISSING'}
end
local f = redis.call('HMGET', KEYS[1], 'function_id', 'args', 'timeout_ms', 'attempts')
if st ~= 'QUEUED' then
  return {st, tonumber(f[4]) or 0, f[1] or '', f[2] or '', f[3] or ''}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'RUNNING', 'worker', ARGV[2], 'started_at', ARGV[3])
redis.call('PUBLISH', KEYS[2], '{"type":"task","task_id":"' .. ARGV[1] ..
  '","status":"RUNNING","worker":' .. cjson.encode(ARGV[2]) .. ',"at":' .. ARGV[3] .. '}')
return {st, attempts, f[1] or '', f[2] or '', f[3] or ''}
