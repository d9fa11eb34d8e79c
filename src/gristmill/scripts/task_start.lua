--[[ task_start: mark a batch's tasks running, once per batch, before their handlers run.

  KEYS[1..n] the tasks' records
  ARGV[1] now ms
  Returns {letters, attempt per record}: one letter per record, and the run number it starts
  (`attempt` counts runs: an entry delivered to a worker that died before running it is not
  counted, unlike a processor's delivery-based attempt):
    r  run it (now `running`, its attempt one more; a history line from the second run on:
       the first start is `started_at`, so the common path keeps the record small)
    n  no record (untracked, or its record was deleted): run it, record nothing
    c  cancelled, or done already (a duplicate entry): ack it unrun
    x  not started within its ttl (counted from `queued_at`; a task that started once does not
       expire): dead-letter it as `expired` (the batch's commit writes the state) ]]

local now = ARGV[1]
local flags, reply = {}, {''}
for k = 1, #KEYS do
  local key = KEYS[k]
  local found = redis.call('HMGET', key, 'state', 'ttl_ms', 'queued_at', 'started_at')
  local state = found[1]
  local flag = 'r'
  if not state then
    flag = 'n'
  elseif state == 'cancelled' or state == 'done' then
    flag = 'c'
  elseif state == 'expired' then
    flag = 'x'
  elseif (state == 'queued' or state == 'todo') and found[2] and not found[4] then
    local since = tonumber(found[3] or now)
    if tonumber(now) > since + tonumber(found[2]) then flag = 'x' end
  end
  local attempt = 0
  if flag == 'r' then
    attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'state', 'running', 'state_at', now, 'updated_at', now)
    if attempt == 1 then
      redis.call('HSETNX', key, 'started_at', now)  -- the first start: its history line
    else
      local events = redis.call('HGET', key, 'events') or ''
      redis.call('HSET', key, 'events', events .. now .. ' running attempt ' .. attempt .. '\n')
    end
  end
  flags[k] = flag
  reply[k + 1] = attempt
end
reply[1] = table.concat(flags)
return reply
