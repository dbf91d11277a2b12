-- Cancels one task (index_lib.lua, prepended, does the work).
-- ARGV[1]: root ('faas:')  ARGV[2]: task id  ARGV[3]: now (unix ms)  ARGV[4]: retention seconds
-- ARGV[5]: error type  ARGV[6]: error message
-- Returns the status before: QUEUED or RUNNING (now FAILED), COMPLETED or FAILED (left as
-- they were), or MISSING.
return cancel_task(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
