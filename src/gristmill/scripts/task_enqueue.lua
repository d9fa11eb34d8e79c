--[[ task_enqueue: add tasks to a queue stream (or its delayed store), each with its record.

  A task whose record exists already is not added again: the same id is one task (an
  idempotent enqueue). With a fire marker (a schedule's fire), nothing is added if the marker
  is set already: a fire is enqueued once however often a failed-over leader tries again.

  KEYS[1] the queue stream   KEYS[2] its delayed store   KEYS[3..] records, then the marker
  ARGV[1] wake channel of the delayed stores   ARGV[2] bucket width in ms (0: one member each)
  ARGV[3] key index of the fire marker (0: none)   ARGV[4] its ttl in ms
  ARGV[5] number of tasks, then per task:
       record key index (0: untracked), 'q' or 'd',
       'q': number of entry items, items...          (XADD the queue stream)
       'd': due ms, the entry packed (pack_entry)    (park it in the delayed store)
       number of record items, items...              (HSET the record)
  Returns one integer per task: 1 added, 0 its id exists already (nothing written for it);
  or an empty list when the fire marker was set already. ]]

--!include lib/delayed_add.lua

local wake_channel, bucket_ms = ARGV[1], ARGV[2]
local marker = tonumber(ARGV[3])
if marker > 0 then
  if not redis.call('SET', KEYS[marker], '1', 'NX', 'PX', ARGV[4]) then return {} end
end
local reply = {}
local i = 6
for t = 1, tonumber(ARGV[5]) do
  local record, mode = tonumber(ARGV[i]), ARGV[i + 1]
  i = i + 2
  local fresh = record == 0 or redis.call('EXISTS', KEYS[record]) == 0
  if mode == 'q' then
    local items = tonumber(ARGV[i])
    if fresh then redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + items)) end
    i = i + 1 + items
  else
    if fresh then delayed_add(KEYS[2], ARGV[i], ARGV[i + 1], wake_channel, bucket_ms) end
    i = i + 2
  end
  local items = tonumber(ARGV[i])
  if fresh and record > 0 then redis.call('HSET', KEYS[record], unpack(ARGV, i + 1, i + items)) end
  i = i + 1 + items
  reply[t] = fresh and 1 or 0
end
return reply
