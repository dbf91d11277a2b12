-- Records a task's outcome once: a terminal status is never overwritten, so a late or
-- duplicate result is dropped. Also removes the task's queue entry (ack + delete), and can
-- take the next entry for the slot that just became free (take_lib.lua, prepended), so that a
-- busy dispatcher needs one round trip per task: this one.
-- KEYS[1]: task hash  KEYS[2]: stats hash  KEYS[3]: events channel  KEYS[4]: queue stream
-- KEYS[5]: finished channel (terminal events only, for result waiters)
-- ARGV[1]: task id  ARGV[2]: COMPLETED | FAILED  ARGV[3]: result ('' = null)
-- ARGV[4]: error JSON ('' = none)  ARGV[5]: log  ARGV[6]: worker  ARGV[7]: now (unix ms)
-- ARGV[8]: retention seconds (0 = keep)  ARGV[9]: consumer group  ARGV[10]: stream entry id ('' = none)
-- ARGV[11]: '' or ',"outcome":{...}', the JSON the event carries for result waiters (built by
--   the caller with serde, so this script never has to encode a result)
-- ARGV[12]: '' (take nothing) or the worker to start the next entry on
-- ARGV[13]: consumer  ARGV[14]: task key prefix (both only used with ARGV[12])
-- ARGV[15]: the lease ('' = none): the attempt number the outcome belongs to. With a lease the
--   outcome is recorded only while the task is RUNNING under that attempt on worker ARGV[6]:
--   a late result of an earlier attempt (a frozen worker back, a worker declared lost) or of
--   another worker is dropped, and the reply says so ('2').
-- ARGV[16]: how many entries to take for worker ARGV[12] ('' = 1): more when the slot also
--   holds tasks ahead (dispatcher/mod.rs, "Holding the next tasks").
-- Returns: {'1' when the outcome was recorded, '0' when the task was already terminal or is
-- gone, or '2' when the lease did not match, then take_entries' 7 values per entry taken}. A
-- failed take is no error: the outcome is what matters here, and the dispatcher's next read
-- reports the queue's trouble.
if ARGV[10] ~= '' then
  redis.call('XACK', KEYS[4], ARGV[9], ARGV[10])
  redis.call('XDEL', KEYS[4], ARGV[10])
end
local recorded = '0'
-- Everything the fence, the indexes and the statistics need, in one read.
local h = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'worker', 'created_at',
  'function_id', 'started_at')
local st = h[1]
local fenced = false
if ARGV[15] ~= '' and st and st ~= 'COMPLETED' and st ~= 'FAILED' then
  fenced = st ~= 'RUNNING' or h[2] ~= ARGV[15] or h[3] ~= ARGV[6]
  if fenced then recorded = '2' end
end
if st and st ~= 'COMPLETED' and st ~= 'FAILED' and not fenced then
  recorded = '1'
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'result', ARGV[3], 'error', ARGV[4],
    'log', ARGV[5], 'worker', ARGV[6], 'finished_at', ARGV[7])
  if tonumber(ARGV[8]) > 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[8])
  end
  local tick = redis.call('HINCRBY', KEYS[2], string.lower(ARGV[2]), 1)
  local event = '{"type":"task","task_id":"' .. ARGV[1] .. '","status":"' ..
    ARGV[2] .. '","worker":' .. cjson.encode(ARGV[6]) .. ',"at":' .. ARGV[7] .. ARGV[11] .. '}'
  redis.call('PUBLISH', KEYS[3], event)
  redis.call('PUBLISH', KEYS[5], event)
  -- [indexes and function statistics] (index_lib.lua). The worker index got the task when
  -- it started; only an outcome from another worker (none is, with a lease) adds it there.
  local root = root_of(KEYS[1])
  local created = tonumber(h[4]) or 0
  if ARGV[2] == 'FAILED' then
    idx_failed(root, ARGV[1], created)
  end
  if h[3] ~= ARGV[6] then
    idx_worker(root, ARGV[1], ARGV[6], created)
  end
  fn_finished(root, h[5], ARGV[2], ARGV[4], created, h[6], ARGV[7])
  idx_terminal(root, ARGV[1], h[5], ARGV[6], ARGV[7], ARGV[8], tick)
end
local out = {recorded}
if ARGV[12] ~= '' then
  local workers = {}
  for i = 1, tonumber(ARGV[16]) or 1 do workers[i] = ARGV[12] end
  local taken = take_entries(KEYS[4], KEYS[3], ARGV[9], ARGV[13], ARGV[14], ARGV[7],
    workers, nil)
  for _, v in ipairs(taken) do out[#out + 1] = v end
end
return out
