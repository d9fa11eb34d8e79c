--[[ lib/delayed_add: park one packed entry in a delayed store. Include it with the line
  `--!include lib/delayed_add.lua`; it defines

    local function delayed_add(store_key, due_ms, member, wake_channel, bucket_ms)

  store_key     keys.delayed_store(target): sorted set, score = release time in ms
  due_ms        integer ms since the epoch (a number or a decimal string)
  member        the entry packed by gristmill.timing.packing.pack_entry (a msgpack array)
  wake_channel  keys.delayed_wake(prefix): published to when the entry is now the store's
                earliest, so a sleeping sweeper wakes; '' or nil: no wake (it still wakes on
                its own within its longest sleep)
  bucket_ms     settings.delayed_bucket_ms for the "buckets" layout, 0 for "zset"; nil: 1000

  Layouts (the sweep tells members apart by their first byte: a packed entry starts with a
  msgpack array byte or 0xC1, a bucket's member is a decimal string):
    buckets  release_ms = due_ms rounded UP to a multiple of bucket_ms (never released early);
             the sorted set holds release_ms once (member = its decimal string); the entries
             wait in the list store_key .. ':' .. release_ms (= keys.delayed_bucket(target,
             release_ms)), a listpack of a few bytes' overhead per entry. An entry whose
             fields start schema_id, payload is stored compact (lib/packed.lua): its schema id
             replaced by the store's small number for it (keys.delayed_schema_refs / _ids)
    zset     member = packed entry .. a unique suffix (INCR of store_key .. ':seq' =
             keys.delayed_sequence(target)) so equal entries do not collapse; score = due_ms
  The derived keys share store_key's hash slot (its {tag}). Returns nothing, or an error
  reply (before any write) if member is not a packed entry. ]]
--!include lib/packed.lua
local schema_ref_of = {}  -- per script call: store -> {schema id -> ref}

local function schema_ref(store_key, id)
  local known = schema_ref_of[store_key]
  if known == nil then
    known = {}
    schema_ref_of[store_key] = known
  end
  local cached = known[id]
  if cached then return cached end
  local refs = store_key .. ':schema-refs'
  local ref = redis.call('HGET', refs, id)
  if ref then
    ref = tonumber(ref)
  else
    ref = redis.call('HLEN', refs) + 1
    redis.call('HSET', refs, id, ref)
    redis.call('HSET', store_key .. ':schema-ids', ref, id)
  end
  known[id] = ref
  return ref
end

-- the compact form of a wire entry, or the entry itself when it does not start schema_id
-- (code 1), payload (code 2)
local function str_at(s, at)  -- a msgpack str at `at`: its first byte and end, or nil
  local b = string.byte(s, at)
  if b == nil then return nil end
  if b >= 0xa0 and b <= 0xbf then return at + 1, at + b - 0xa0 end
  if b == 0xd9 then
    local n = string.byte(s, at + 1)
    if n then return at + 2, at + 1 + n end
  elseif b == 0xda then
    local hi, lo = string.byte(s, at + 1, at + 2)
    if lo then return at + 3, at + 2 + hi * 256 + lo end
  end
  return nil
end

local function compact(store_key, member)
  -- the common entry, {schema_id, payload} and nothing else, without building a Lua table
  if string.byte(member, 1) == 0x94 and string.byte(member, 2) == 1 then
    local id_from, id_to = str_at(member, 3)
    if id_from and string.byte(member, id_to + 1) == 2 then
      local from, to = str_at(member, id_to + 2)
      if from and to == #member then
        local ref = schema_ref(store_key, string.sub(member, id_from, id_to))
        return '\193' .. varint(ref * 2) .. string.sub(member, from)
      end
    end
  end
  local ok, fields = pcall(cmsgpack.unpack, member)
  if not ok or type(fields) ~= 'table' or fields[1] ~= 1 or fields[3] ~= 2
      or type(fields[2]) ~= 'string' or type(fields[4]) ~= 'string' then
    return member
  end
  local extra = ''
  if #fields > 4 then
    local rest = {}
    for i = 5, #fields do rest[#rest + 1] = fields[i] end
    extra = cmsgpack.pack(rest)
  end
  local ref = schema_ref(store_key, fields[2])
  if extra == '' then return '\193' .. varint(ref * 2) .. fields[4] end
  return '\193' .. varint(ref * 2 + 1) .. varint(#extra) .. extra .. fields[4]
end

local function delayed_add(store_key, due_ms, member, wake_channel, bucket_ms)
  local due = tonumber(due_ms)
  local width = tonumber(bucket_ms or 1000)
  if not is_wire_entry(member) then
    return redis.error_reply('ERR delayed_add: member is not a packed entry')
  end
  local earliest
  if width > 0 then
    local release = string.format('%.0f', math.ceil(due / width) * width)
    redis.call('RPUSH', store_key .. ':' .. release, compact(store_key, member))
    -- a new bucket is the only way the earliest release time can move
    if redis.call('ZADD', store_key, 'NX', release, release) == 1 then
      earliest = redis.call('ZRANGE', store_key, 0, 0)[1] == release
    end
  else
    local unique = member .. string.format('%.0f', redis.call('INCR', store_key .. ':seq'))
    redis.call('ZADD', store_key, string.format('%.0f', due), unique)
    earliest = redis.call('ZRANGE', store_key, 0, 0)[1] == unique
  end
  if earliest and wake_channel ~= nil and wake_channel ~= '' then
    redis.call('PUBLISH', wake_channel, store_key)
  end
end
