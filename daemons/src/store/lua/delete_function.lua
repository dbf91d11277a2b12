-- Deletes a function, then fails its QUEUED tasks FunctionDeleted, one bounded batch per call
-- (index_lib.lua, prepended, does the cancelling). Finished tasks keep their records.
-- ARGV[1]: root  ARGV[2]: function id  ARGV[3]: now  ARGV[4]: retention seconds
-- ARGV[5]: batch size  ARGV[6]: offset into the function's task index (0 on the first call,
--   which also deletes the function)  ARGV[7]: error message
-- Returns {-1} when the first call finds no such function, else {cancelled, examined}.
local root, fid = ARGV[1], ARGV[2]
local offset = tonumber(ARGV[6])
if offset == 0 then
  if redis.call('DEL', root .. 'fn:' .. fid) == 0 then
    return {-1}
  end
  redis.call('ZREM', root .. 'functions', fid)
  -- (fnruns and fnwaits: the samples' lists before they became one, fnsamples.)
  redis.call('DEL', root .. 'fnstats:' .. fid, root .. 'fnsamples:' .. fid,
    root .. 'fnruns:' .. fid, root .. 'fnwaits:' .. fid)
  -- Daemons watch this with the epoch and empty their function caches when it moves.
  redis.call('INCR', root .. 'functions:deleted')
end
local ids = redis.call('ZRANGE', root .. 'tasks:fn:' .. fid, offset, offset + tonumber(ARGV[5]) - 1)
local n = 0
for _, id in ipairs(ids) do
  if cancel_task(root, id, ARGV[3], ARGV[4], 'FunctionDeleted', ARGV[7]) == 'QUEUED' then
    n = n + 1
  end
end
return {n, #ids}
