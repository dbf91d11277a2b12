-- Records a task's outcome once: a terminal status is never overwritten, so a late or
-- duplicate result is dropped. Also removes the task's queue entry (ack + delete).
-- KEYS[1]: task hash  KEYS[2]: stats hash  KEYS[3]: events channel  KEYS[4]: queue stream
-- ARGV[1]: task id  ARGV[2]: COMPLETED | FAILED  ARGV[3]: result ('' = null)
-- ARGV[4]: error JSON ('' = none)  ARGV[5]: log  ARGV[6]: worker  ARGV[7]: now (unix ms)
-- ARGV[8]: retention seconds (0 = keep)  ARGV[9]: consumer group  ARGV[10]: stream entry id ('' = none)
-- Returns: 1 when the outcome was recorded, 0 when the task was already terminal or is gone.
if ARGV[10] ~= '' then
  redis.call('XACK', KEYS[4], ARGV[9], ARGV[10])
  redis.call('XDEL', KEYS[4], ARGV[10])
end
local st = redis.call('HGET', KEYS[1], 'status')
if not st or st == 'COMPLETED' or st == 'FAILED' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'result', ARGV[3], 'error', ARGV[4],
  'log', ARGV[5], 'worker', ARGV[6], 'finished_at', ARGV[7])
if tonumber(ARGV[8]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[8])
end
redis.call('HINCRBY', KEYS[2], string.lower(ARGV[2]), 1)
redis.call('PUBLISH', KEYS[3], '{"type":"task","task_id":"' .. ARGV[1] .. '","status":"' ..
  ARGV[2] .. '","worker":' .. cjson.encode(ARGV[6]) .. ',"at":' .. ARGV[7] .. '}')
return 1
