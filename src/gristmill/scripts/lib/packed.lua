--[[ lib/packed: the forms a waiting entry takes (docs/delayed.md, "What is stored"). Defines
    local function is_wire_entry(member)    a msgpack array (packing.pack_entry): what
                                            clients send, and what older stores hold
    local function is_packed_entry(member)  a wire entry, or a compact one (first byte 0xC1);
                                            false for a bucket's member (a decimal release)
    local function varint(n)                 n >= 0 as LEB128 bytes
    local function read_varint(s, at)        -> n, the index after it (nil at a bad end)
  A compact entry (the bucket layout stores these for entries that start schema_id, payload):
    0xC1, varint(2 * schema ref + has extra), [varint(#extra), extra], payload (to the end)
  schema ref: the store's number for the schema id (hash store .. ':schema-refs', id -> ref;
  store .. ':schema-ids', ref -> id); extra: the other fields as a wire entry, or nothing ]]
local function is_wire_entry(member)
  local b = string.byte(member, 1)
  return b ~= nil and ((b >= 0x90 and b <= 0x9f) or b == 0xdc or b == 0xdd)
end
local function is_packed_entry(member)
  return string.byte(member, 1) == 0xc1 or is_wire_entry(member)
end
local function varint(n)
  if n < 128 then return string.char(n) end
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end
local function read_varint(s, at)
  local n, scale = 0, 1
  while true do
    local b = string.byte(s, at)
    if b == nil then return nil, at end
    at = at + 1
    if b < 128 then return n + b * scale, at end
    n = n + (b - 128) * scale
    scale = scale * 128
  end
end
