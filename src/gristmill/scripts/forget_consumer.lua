--[[ forget_consumer: delete a consumer from a group only if it holds no pending entry.
  XGROUP DELCONSUMER drops the consumer's pending entries for good, so the check and the
  delete must be one step.
  KEYS[1] stream
  ARGV[1] group   ARGV[2] consumer
  Returns 1 if deleted, 0 if it still holds entries (kept), -1 if there was no such consumer ]]
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return -1 end
for _, info in ipairs(consumers) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  if fields['name'] == ARGV[2] then
    if tonumber(fields['pending']) > 0 then return 0 end
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    return 1
  end
end
return -1
