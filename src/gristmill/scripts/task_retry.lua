--[[ task_retry: run a finished task again (error, cancelled or expired): queue its entry anew.

  KEYS[1] the record   KEYS[2] its queue stream   ARGV[1] now ms
  Returns 1 if queued again, else the task's state ('' when there is no record). ]]

local key, now = KEYS[1], ARGV[1]
local found = redis.call('HMGET', key, 'state', 'events', 'schema_id', 'payload', 'name', 'id')
local state = found[1]
if state ~= 'error' and state ~= 'cancelled' and state ~= 'expired' then return state or '' end
redis.call('XADD', KEYS[2], '*', 'schema_id', found[3], 'payload', found[4],
           'task', found[5] .. '/' .. found[6])
redis.call('HSET', key, 'state', 'queued', 'state_at', now, 'updated_at', now, 'queued_at', now,
           'events', (found[2] or '') .. now .. ' queued again by hand\n')
redis.call('HDEL', key, 'finished_at')
redis.call('PERSIST', key)
return 1
