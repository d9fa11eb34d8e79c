--[[ delayed_schedule: park a batch of packed entries in their delayed stores.
  KEYS[1..n]  delayed stores (keys.delayed_store(target)); in Cluster one hash slot per call:
              the caller groups entries by slot
  ARGV[1] wake channel (keys.delayed_wake(prefix))   ARGV[2] bucket ms (0: the zset layout)
  ARGV[3] one msgpack array of triples: store key index (1-based), due ms, packed entry
  Returns the number of entries parked ]]
--!include lib/delayed_add.lua

local wake, width = ARGV[1], ARGV[2]
local items = cmsgpack.unpack(ARGV[3])
-- check every member before the first write: a script that fails half way keeps its writes
for i = 3, #items, 3 do
  if not is_wire_entry(items[i]) then
    return redis.error_reply('ERR delayed_schedule: entry ' .. (i / 3) .. ' is not packed')
  end
end
for i = 1, #items, 3 do
  delayed_add(KEYS[items[i]], items[i + 1], items[i + 2], wake, width)
end
return #items / 3
