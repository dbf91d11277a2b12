-- Takes queue entries for this dispatcher and starts their tasks in one round trip: under
-- load the dispatcher reads and starts a batch with one call instead of an XREADGROUP plus one
-- call per task. (take_lib.lua, prepended, does the work.)
-- KEYS[1]: queue stream  KEYS[2]: events channel
-- ARGV[1]: consumer group  ARGV[2]: consumer  ARGV[3]: task key prefix ('faas:task:')
-- ARGV[4]: now (unix ms; '' = Redis' own clock)  ARGV[5]: n, the number of entries wanted
-- ARGV[6 .. 5+n]: the worker each entry goes to, in order
-- ARGV[6+n ..]: optional (entry id, task id) pairs already read with a blocking XREADGROUP;
--   or 'after', MARK: the entries this consumer has pending with ids above MARK (the ones a
--   blocking XREADGROUP pipelined just before this call delivered: QueueReader::read_and_start);
--   without either the script reads up to n new entries itself.
-- Returns take_entries' list (7 values per entry); a failed read (NOGROUP) is an error reply.
local n = tonumber(ARGV[5])
local workers = {}
for i = 1, n do workers[i] = ARGV[5 + i] end
local now = ARGV[4]
if now == '' then
  -- Sent before a blocking read, the call cannot know when it will run.
  local t = redis.call('TIME')
  now = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
local given = nil
if ARGV[6 + n] == 'after' then
  given = {}
  local reply = redis.pcall('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', n, 'STREAMS',
    KEYS[1], ARGV[7 + n])
  if type(reply) == 'table' and reply.err then
    return redis.error_reply(reply.err)
  end
  for _, e in ipairs(read_entries(reply)) do
    -- A RUNNING task's entry above the mark was not delivered by that read: a slot of this
    -- dispatcher took it (finish.lua) and is about to run it. It is left alone.
    if e[2] == '' or redis.call('HGET', ARGV[3] .. e[2], 'status') ~= 'RUNNING' then
      given[#given + 1] = e
    end
  end
elseif #ARGV > 5 + n then
  given = {}
  for i = 6 + n, #ARGV, 2 do given[#given + 1] = {ARGV[i], ARGV[i + 1]} end
end
local out, err = take_entries(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], now, workers, given)
if err then
  return redis.error_reply(err)
end
return out
