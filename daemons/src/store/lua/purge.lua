-- Cancels one bounded batch of QUEUED tasks, the oldest first (index_lib.lua, prepended, does
-- the work); the caller repeats until a batch examines fewer than it asked, so no single call
-- blocks Redis long.
-- ARGV[1]: root  ARGV[2]: now  ARGV[3]: retention seconds  ARGV[4]: batch size
-- ARGV[5]: error type  ARGV[6]: error message
-- Returns {cancelled, examined}.
local queued = ARGV[1] .. 'tasks:status:QUEUED'
local ids = redis.call('ZRANGE', queued, 0, tonumber(ARGV[4]) - 1)
local n = 0
for _, id in ipairs(ids) do
  local was = cancel_task(ARGV[1], id, ARGV[2], ARGV[3], ARGV[5], ARGV[6])
  if was == 'QUEUED' then
    n = n + 1
  else
    -- Listed as QUEUED but not (expired, or an index left behind): unlist it.
    redis.call('ZREM', queued, id)
  end
end
return {n, #ids}
