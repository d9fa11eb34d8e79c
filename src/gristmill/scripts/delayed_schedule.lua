--[[ delayed_schedule: park a batch of packed entries in their delayed stores.
  KEYS[1..n]  delayed stores (keys.delayed_store(target)); in Cluster one hash slot per call:
              the caller groups entries by slot
  ARGV[1] wake channel (keys.delayed_wake(prefix))   ARGV[2] bucket ms (0: the zset layout)
  then per entry: store key index (1-based), due ms, packed entry
  Returns the number of entries parked ]]
--!include lib/delayed_add.lua

local wake, width = ARGV[1], ARGV[2]
local parked = 0
for i = 3, #ARGV, 3 do
  local err = delayed_add(KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2], wake, width)
  if err then return err end
  parked = parked + 1
end
return parked
