--[[ task_note: a FIFO task's failed run, retried in place: its record's state and history.

  KEYS[1] the record   ARGV[1] history lines to append   ARGV[2..] field/value items to HSET
  Returns 1, or 0 if the task has no record. ]]

local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return 0 end
local events = redis.call('HGET', key, 'events') or ''
redis.call('HSET', key, 'events', events .. ARGV[1], unpack(ARGV, 2))
return 1
