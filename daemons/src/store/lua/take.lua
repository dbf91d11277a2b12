-- Takes queue entries for this dispatcher and starts their tasks in one round trip: under
-- load the dispatcher reads and starts a batch with one call instead of an XREADGROUP plus one
-- call per task. (take_lib.lua, prepended, does the work.)
-- KEYS[1]: queue stream  KEYS[2]: events channel
-- ARGV[1]: consumer group  ARGV[2]: consumer  ARGV[3]: task key prefix ('faas:task:')
-- ARGV[4]: now (unix ms)  ARGV[5]: n, the number of entries wanted
-- ARGV[6 .. 5+n]: the worker each entry goes to, in order
-- ARGV[6+n ..]: optional (entry id, task id) pairs already read with a blocking XREADGROUP;
--   without them the script reads up to n new entries itself.
-- Returns take_entries' list (7 values per entry); a failed read (NOGROUP) is an error reply.
local n = tonumber(ARGV[5])
local workers = {}
for i = 1, n do workers[i] = ARGV[5 + i] end
local given = nil
if #ARGV > 5 + n then
  given = {}
  for i = 6 + n, #ARGV, 2 do given[#given + 1] = {ARGV[i], ARGV[i + 1]} end
end
local out, err = take_entries(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], workers, given)
if err then
  return redis.error_reply(err)
end
return out
