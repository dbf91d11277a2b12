-- Cancels the QUEUED tasks of one bounded batch of queue entries, the oldest first
-- (index_lib.lua, prepended, does the cancelling); the caller repeats from the last entry
-- returned until a batch examines fewer than it asked, so no single call blocks Redis long.
-- Entries whose task is not QUEUED (running, already cancelled) are left as they are.
-- KEYS[1]: the queue stream
-- ARGV[1]: root  ARGV[2]: now  ARGV[3]: retention seconds  ARGV[4]: batch size
-- ARGV[5]: error type  ARGV[6]: error message  ARGV[7]: the last entry of the previous batch
--   ('' on the first)
-- Returns {cancelled, examined, the last entry examined ('' when none)}.
local from = ARGV[7] ~= '' and ('(' .. ARGV[7]) or '-'
local entries = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', tonumber(ARGV[4]))
local n, last = 0, ''
for _, e in ipairs(entries) do
  last = e[1]
  local fields = e[2] or {}
  for j = 1, #fields, 2 do
    if fields[j] == 'task' and
      cancel_task(ARGV[1], fields[j + 1], ARGV[2], ARGV[3], ARGV[5], ARGV[6]) == 'QUEUED' then
      n = n + 1
    end
  end
end
return {n, #entries, last}
