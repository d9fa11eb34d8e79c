#!lua
--[[ commit_batch: publish a batch's outputs and ack its inputs, only for entries still ours.
  An entry that another consumer claimed meanwhile (its PEL record moved away from us) adds
  neither its outputs nor its ack: a crash or a claim never duplicates an output in Redis.

  All or nothing: a script keeps what it wrote before a failing command (no rollback), so
  everything that could refuse this commit midway is checked before its first write: the ACL
  of every command on every key (redis.acl_check_cmd), the TYPE of every key, and memory (the
  `#!lua` line without `allow-oom` makes the server refuse the whole call under maxmemory).
  A refusal replies NOPERM / WRONGTYPE naming the command and key, having written nothing.

  KEYS[1..n]  every key the batch writes or acks: input streams, outputs, lanes (one slot in
              Cluster; the caller splits batches that span slots)
  ARGV[1] group   ARGV[2] consumer   ARGV[3] wake channel of the delayed stores
  ARGV[4] bucket width in ms of the delayed stores (0: one member per entry)
  ARGV[5] role of each key, one letter per KEYS entry: 'i' an input (XACK), 's' a stream
          written (XADD), 'a' both, 'd' a delayed store, 'h' a task record (a hash)
  ARGV[6] number of input keys (m)
  then m times: key index, lowest id, highest id, entry count  (the ownership check: one
                XPENDING per input key over the batch's exact id range, for this consumer)
  then the number of entries, then per entry:
       input key index, entry id, number of ops, and per op one of:
         'x', key index, number of items, items...    XADD key * items
         'e', key index, schema id, payload            XADD key * schema_id .. payload ..
                                                      (the usual entry, in fewer arguments)
         'd', store key index, due ms, packed entry   park it in a delayed store (a retry,
                                                      a requeue); swept into its stream later
         'h', key index, ttl ms, history line, number of items, items...
                                                      HSET a task's record (its state, result),
                                                      append the line to its `events` field
                                                      ('' none), PEXPIRE it (ttl 0: keep it)
  Returns {committed count, skipped entry ids...} ]]

--!include lib/delayed_add.lua

local group, consumer, wake_channel, bucket_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local roles = ARGV[5]

-- 1. checks: nothing below this block may fail
local function refused(code, what)
  return redis.error_reply(code .. ' commit_batch: ' .. what .. '; nothing of this commit was written')
end
local function may(command, ...)
  return redis.acl_check_cmd(command, ...)
end
local function key_is(key, wanted)
  local kind = redis.call('TYPE', key)['ok']
  return kind == 'none' or kind == wanted, kind
end
local delayed = false
for k = 1, #KEYS do
  local key, role = KEYS[k], string.sub(roles, k, k)
  local wanted = role == 'd' and 'zset' or (role == 'h' and 'hash' or 'stream')
  local fits, kind = key_is(key, wanted)
  if not fits then
    return refused('WRONGTYPE', 'key ' .. key .. ' holds a ' .. kind .. ', not a ' .. wanted)
  end
  if (role == 'i' or role == 'a') and not may('XACK', key, group, '0-1') then
    return refused('NOPERM', 'this user may not run XACK on ' .. key)
  end
  if (role == 's' or role == 'a') and not may('XADD', key, '*', 'f', 'v') then
    return refused('NOPERM', 'this user may not run XADD on ' .. key)
  end
  if role == 'h' and not (may('HSET', key, 'f', 'v') and may('HGET', key, 'f')
                          and may('PEXPIRE', key, '1')) then
    return refused('NOPERM', 'this user may not run HSET, HGET and PEXPIRE on ' .. key)
  end
  if role == 'd' then
    delayed = true
    local probe = key .. ':0'
    if not (may('ZADD', key, '0', 'm') and may('RPUSH', probe, 'm') and may('INCR', probe)) then
      return refused('NOPERM', 'this user may not run ZADD, RPUSH and INCR on ' .. key .. '*')
    end
  end
end
if delayed and wake_channel ~= '' and not may('PUBLISH', wake_channel, 'w') then
  return refused('NOPERM', 'this user may not PUBLISH to ' .. wake_channel)
end

local i = 6
local owned = {}
local inputs = tonumber(ARGV[i]); i = i + 1
for _ = 1, inputs do
  local key_index = tonumber(ARGV[i])
  local first, last, count = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  local set = {}
  -- room for entries of ours in the range that this batch does not carry (an earlier failed commit)
  local pending = redis.call('XPENDING', KEYS[key_index], group, first, last, count + 1000, consumer)
  for _, record in ipairs(pending) do set[record[1]] = true end
  owned[key_index] = set
end
local entries_at = i

if delayed then
  -- the lists and counters a delayed store derives from its key: their types, before any write
  local width = tonumber(bucket_ms)
  local j = entries_at + 1
  for _ = 1, tonumber(ARGV[entries_at]) do
    local ops = tonumber(ARGV[j + 2])
    j = j + 3
    for _ = 1, ops do
      local op = ARGV[j]
      if op == 'x' then
        j = j + 3 + tonumber(ARGV[j + 2])
      elseif op == 'h' then
        j = j + 5 + tonumber(ARGV[j + 4])
      else
        if op == 'd' then
          local store = KEYS[tonumber(ARGV[j + 1])]
          local derived, wanted = store .. ':seq', 'string'
          if width > 0 then
            local release = string.format('%.0f', math.ceil(tonumber(ARGV[j + 2]) / width) * width)
            derived, wanted = store .. ':' .. release, 'list'
          end
          local fits, kind = key_is(derived, wanted)
          if not fits then
            return refused('WRONGTYPE', 'key ' .. derived .. ' holds a ' .. kind .. ', not a ' .. wanted)
          end
          if not is_packed_entry(ARGV[j + 3]) then
            return refused('ERR', 'a delayed member is not a packed entry')
          end
        elseif op ~= 'e' then
          return refused('ERR', 'unknown op ' .. tostring(op))
        end
        j = j + 4
      end
    end
  end
end

-- 2. writes
local acks = {}
local committed, skipped = 0, {}
local entries = tonumber(ARGV[i]); i = i + 1
for _ = 1, entries do
  local key_index, id, ops = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local ours = owned[key_index][id] == true
  for _ = 1, ops do
    local op = ARGV[i]
    if op == 'e' then
      if ours then
        redis.call('XADD', KEYS[tonumber(ARGV[i + 1])], '*',
                   'schema_id', ARGV[i + 2], 'payload', ARGV[i + 3])
      end
      i = i + 4
    elseif op == 'x' then
      local target, items = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
      if ours then
        redis.call('XADD', KEYS[target], '*', unpack(ARGV, i + 3, i + 2 + items))
      end
      i = i + 3 + items
    elseif op == 'h' then
      local items = tonumber(ARGV[i + 4])
      if ours then
        local key, ttl, line = KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
        if line ~= '' then
          local events = redis.call('HGET', key, 'events') or ''
          redis.call('HSET', key, 'events', events .. line, unpack(ARGV, i + 5, i + 4 + items))
        else
          redis.call('HSET', key, unpack(ARGV, i + 5, i + 4 + items))
        end
        if ttl ~= '0' then redis.call('PEXPIRE', key, ttl) end
      end
      i = i + 5 + items
    elseif op == 'd' then
      if ours then
        delayed_add(KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3], wake_channel, bucket_ms)
      end
      i = i + 4
    else
      return redis.error_reply('ERR commit_batch: unknown op ' .. tostring(op))
    end
  end
  if ours then
    local list = acks[key_index]
    if list == nil then list = {}; acks[key_index] = list end
    list[#list + 1] = id
    committed = committed + 1
  else
    skipped[#skipped + 1] = id
  end
end

for key_index, ids in pairs(acks) do
  -- chunks: unpack() of a very long list can overflow Lua's C stack
  for start = 1, #ids, 4000 do
    redis.call('XACK', KEYS[key_index], group, unpack(ids, start, math.min(start + 3999, #ids)))
  end
end
local reply = {committed}
for _, id in ipairs(skipped) do reply[#reply + 1] = id end
return reply
