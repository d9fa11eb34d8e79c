--[[ delayed_sweep: move due entries of one delayed store into its target stream, in one step:
  check the caller's lease token (fencing), read the due entries, XADD each, remove them.
  KEYS[1] fencing 'lease': the lease key (keys.lease('sweeper', prefix)), compared with the
          token; fencing 'epoch' (Cluster, where the lease key is in another slot): the
          store's fence (keys.delayed_fence(target)), the highest lease epoch that swept it
  KEYS[2] delayed store of the target   KEYS[3] target stream
  ARGV[1] lease token ('<epoch>:...'); '' only for an operator's move-now (no leader involved)
  ARGV[2] release what is due at or before this ms; '' : now by the server's TIME (so a
          skewed client clock cannot release early)
  ARGV[3] at most this many entries (<= 1000 keeps the script near 2.5 ms)
  ARGV[4] eager horizon ms: when every group of the target has no lag and nothing pending,
          also release entries due within this horizon (0: off)
  ARGV[5] fencing: 'lease' or 'epoch' (see KEYS[1])
  Returns {status, moved, next release ms of the store or -1, the now used}
    status 1: swept   0: refused, the token is not the lease holder's (nothing written) ]]

--!include lib/packed.lua

-- the field names pack_entry codes as small integers (gristmill.timing.packing.FIELD_CODES)
local NAMES = {'schema_id', 'payload', 'encoding', 'key', 'attempt', 'origin',
               'traceparent', 'tracestate'}

local token = ARGV[1]
if token ~= '' then
  if ARGV[5] == 'epoch' then
    -- weaker than the lease check: an older leader is refused only by stores a newer one
    -- already swept (a new leader sweeps every store in its first pass)
    local epoch = tonumber(string.match(token, '^(%d+):'))
    local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
    if epoch == nil or epoch < fence then return {0, 0, -1, 0} end
    if epoch > fence then redis.call('SET', KEYS[1], epoch) end
  elseif redis.call('GET', KEYS[1]) ~= token then
    return {0, 0, -1, 0}
  end
end
local now
if ARGV[2] == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
local budget, horizon = tonumber(ARGV[3]), tonumber(ARGV[4])
local store, target = KEYS[2], KEYS[3]

local function target_idle()
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', target)
  if not ok or #groups == 0 then return false end  -- nobody reads it: nothing to keep busy
  for _, info in ipairs(groups) do
    local fields = {}
    for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
    -- lag is nil when Redis cannot tell (entries deleted): count that as busy
    if fields['lag'] ~= 0 or fields['pending'] ~= 0 then return false end
  end
  return true
end

-- A script that fails half way keeps its earlier writes (Redis has no rollback), so nothing
-- below may raise once writing began: an entry that does not unpack or that XADD refuses
-- goes to the target as {delayed_corrupt = raw bytes}, which its consumers dead-letter.
local schema_ids = {}  -- ref -> schema id, read once per call
local function publish_compact(packed)
  local code, at = string.byte(packed, 2), 3  -- a one-byte varint: schema refs below 64
  if code == nil then return false end
  if code >= 128 then code, at = read_varint(packed, 2) end
  if code == nil then return false end
  local ref, size = math.floor(code / 2), 0
  if code % 2 == 1 then size, at = read_varint(packed, at) end
  if size == nil then return false end
  local id = schema_ids[ref]
  if id == nil then
    id = redis.call('HGET', store .. ':schema-ids', ref)
    if not id then return false end
    schema_ids[ref] = id
  end
  local payload = string.sub(packed, at + size)
  local added, reply
  if size == 0 then  -- every argument is a string: redis.pcall cannot raise, no pcall needed
    reply = redis.pcall('XADD', target, '*', 'schema_id', id, 'payload', payload)
    return type(reply) == 'string'
  else
    local ok, fields = pcall(cmsgpack.unpack, string.sub(packed, at, at + size - 1))
    if not ok or type(fields) ~= 'table' or #fields % 2 ~= 0 then return false end
    for i = 1, #fields, 2 do
      if type(fields[i]) == 'number' then fields[i] = NAMES[fields[i]] or '?' end
    end
    added, reply = pcall(redis.pcall, 'XADD', target, '*', 'schema_id', id, 'payload', payload,
                         unpack(fields))
  end
  return added and type(reply) == 'string'
end

local function publish(packed)
  if string.byte(packed, 1) == 0xc1 then
    if not publish_compact(packed) then
      redis.call('XADD', target, '*', 'delayed_corrupt', packed)
    end
    return
  end
  local ok, _, fields = pcall(cmsgpack.unpack_one, packed, 0)  -- a zset suffix is ignored
  if ok and type(fields) == 'table' and #fields > 0 and #fields % 2 == 0 then
    for i = 1, #fields, 2 do
      if type(fields[i]) == 'number' then fields[i] = NAMES[fields[i]] or '?' end
    end
    local added, reply = pcall(redis.pcall, 'XADD', target, '*', unpack(fields))
    if added and type(reply) == 'string' then return end
  end
  redis.call('XADD', target, '*', 'delayed_corrupt', packed)
end

local kind = redis.call('TYPE', target)['ok']
if kind ~= 'stream' and kind ~= 'none' then
  return redis.error_reply('WRONGTYPE delayed_sweep: target ' .. target .. ' is a ' .. kind)
end

local up_to = now
if horizon > 0 and target_idle() then up_to = now + horizon end

local moved, done = 0, {}
local members = redis.call('ZRANGEBYSCORE', store, '-inf', string.format('%.0f', up_to),
                           'LIMIT', 0, budget)
for _, member in ipairs(members) do
  if moved >= budget then break end
  if is_packed_entry(member) then
    publish(member)
    moved = moved + 1
    done[#done + 1] = member
  else
    local bucket = store .. ':' .. member
    local want = budget - moved
    local entries = redis.call('LRANGE', bucket, 0, want - 1)
    for _, packed in ipairs(entries) do publish(packed) end
    moved = moved + #entries
    if #entries < want then
      redis.call('DEL', bucket)
      done[#done + 1] = member
    else
      redis.call('LTRIM', bucket, want, -1)
      if redis.call('EXISTS', bucket) == 0 then done[#done + 1] = member end
    end
  end
end
-- chunks: unpack() of a very long list can overflow Lua's C stack
for start = 1, #done, 500 do
  redis.call('ZREM', store, unpack(done, start, math.min(start + 499, #done)))
end

local next_release = -1
local first = redis.call('ZRANGE', store, 0, 0, 'WITHSCORES')
if #first > 0 then next_release = tonumber(first[2]) end
return {1, moved, next_release, now}
