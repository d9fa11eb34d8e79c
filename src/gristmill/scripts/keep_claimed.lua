--[[ keep_claimed: reset the idle time of entries a slow handler is still working on, so no
  other consumer claims them and runs them twice. Only entries still pending for this consumer
  are touched (an XCLAIM would otherwise take back an entry already claimed away). JUSTID
  leaves the delivery count alone: this is not a new delivery.
  KEYS[1] input stream
  ARGV[1] group   ARGV[2] consumer   ARGV[3..] entry ids
  Returns the number of entries refreshed ]]
local owned = {}
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', #ARGV + 1000, ARGV[2])
for _, record in ipairs(pending) do owned[record[1]] = true end
local ids = {}
for i = 3, #ARGV do
  if owned[ARGV[i]] then ids[#ids + 1] = ARGV[i] end
end
if #ids == 0 then return 0 end
ids[#ids + 1] = 'JUSTID'  -- last: unpack() in the middle of an argument list yields one value
return #redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))
