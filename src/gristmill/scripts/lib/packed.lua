--[[ lib/packed: tell a packed entry (gristmill.timing.packing.pack_entry, a msgpack array)
  from a bucket's member (a decimal release time) by its first byte. Defines
    local function is_packed_entry(member) ]]
local function is_packed_entry(member)
  local b = string.byte(member, 1)
  return b ~= nil and ((b >= 0x90 and b <= 0x9f) or b == 0xdc or b == 0xdd)
end
