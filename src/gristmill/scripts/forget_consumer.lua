--[[ forget_consumer: delete consumers of a group that hold no pending entry and have been
  idle at least ARGV[2] ms (0: any idle time). XGROUP DELCONSUMER drops a consumer's pending
  entries for good, so the check and the delete must be one step.
  KEYS[1] stream
  ARGV[1] group   ARGV[2] minimum idle ms   ARGV[3] only this consumer ('' for any)
  Returns the names of the consumers deleted ]]
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return {} end
local min_idle, only = tonumber(ARGV[2]), ARGV[3]
local deleted = {}
for _, info in ipairs(consumers) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  local name = fields['name']
  if (only == '' or name == only) and tonumber(fields['pending']) == 0
      and tonumber(fields['idle']) >= min_idle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    deleted[#deleted + 1] = name
  end
end
return deleted
