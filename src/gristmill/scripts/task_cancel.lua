--[[ task_cancel: cancel a task that has not started (todo or queued).

  Its entry stays where it is; a worker acks it unrun when it comes (task_start says 'c').
  KEYS[1] the record   ARGV[1] now ms
  Returns 1 if cancelled, else the task's state ('' when there is no record). ]]

local key, now = KEYS[1], ARGV[1]
local found = redis.call('HMGET', key, 'state', 'events', 'result_ttl_ms')
local state = found[1]
if state ~= 'todo' and state ~= 'queued' then return state or '' end
redis.call('HSET', key, 'state', 'cancelled', 'state_at', now, 'updated_at', now,
           'finished_at', now, 'events', (found[2] or '') .. now .. ' cancelled\n')
if found[3] then redis.call('PEXPIRE', key, found[3]) end
return 1
