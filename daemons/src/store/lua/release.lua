-- Gives back a task a dispatcher's slot held ahead and never ran (dispatcher/mod.rs, "Holding
-- the next tasks"): QUEUED again, its attempt uncounted, its entry re-added at the queue's end
-- for any dispatcher to take. Only a task still RUNNING under that attempt on that worker
-- moves; anything else (cancelled meanwhile, re-queued by a reclaim) is left as it is.
-- KEYS[1]: task hash  KEYS[2]: events channel  KEYS[3]: queue stream
-- ARGV[1]: task id  ARGV[2]: now (unix ms)  ARGV[3]: consumer group  ARGV[4]: its stream entry id
-- ARGV[5]: worker  ARGV[6]: the attempt it was started as
-- Returns the status afterwards ('QUEUED' when given back, 'MISSING' for no such task).
redis.call('XACK', KEYS[3], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[3], ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'worker')
if not h[1] then
  return 'MISSING'
end
if h[1] ~= 'RUNNING' or h[2] ~= ARGV[6] or h[3] ~= ARGV[5] then
  return h[1]
end
redis.call('HSET', KEYS[1], 'status', 'QUEUED', 'worker', '', 'attempts', tonumber(ARGV[6]) - 1)
redis.call('HDEL', KEYS[1], 'started_at')
redis.call('XADD', KEYS[3], '*', 'task', ARGV[1])
-- [indexes] started on ARGV[5], it was listed under that worker (take_lib.lua); it ran nowhere.
redis.call('ZREM', root_of(KEYS[1]) .. 'tasks:worker:' .. ARGV[5], ARGV[1])
redis.call('PUBLISH', KEYS[2], '{"type":"task","task_id":"' .. ARGV[1] ..
  '","status":"QUEUED","at":' .. ARGV[2] .. '}')
return 'QUEUED'
