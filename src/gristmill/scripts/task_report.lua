--[[ task_report: add a line to a running task's messages (ctx.report), with its time.

  KEYS[1] the record   ARGV[1] now ms   ARGV[2] the message (one line)
  Returns 1, or 0 if the task has no record. ]]

local key, now = KEYS[1], ARGV[1]
local reports = redis.call('HGET', key, 'reports')
if not reports and redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'reports', (reports or '') .. now .. ' ' .. ARGV[2] .. '\n', 'updated_at', now)
return 1
