--[[ commit_batch: publish a batch's outputs and ack its inputs, only for entries still ours.
  An entry that another consumer claimed meanwhile (its PEL record moved away from us) adds
  neither its outputs nor its ack: a crash or a claim never duplicates an output in Redis.

  KEYS[1..n]  every key the batch writes or acks: input streams, outputs, lanes (one slot in
              Cluster; the caller splits batches that span slots)
  ARGV[1] group   ARGV[2] consumer   ARGV[3] wake channel of the delayed stores
  ARGV[4] bucket width in ms of the delayed stores (0: one member per entry)
  ARGV[5] number of input keys (m)
  then m times: key index, lowest id, highest id, entry count  (the ownership check: one
                XPENDING per input key over an id range, filtered to this consumer)
  then the number of entries, then per entry:
       input key index, entry id, number of ops, and per op one of:
         'x', key index, number of items, items...    XADD key * items
         'e', key index, schema id, payload            XADD key * schema_id .. payload ..
                                                      (the usual entry, in fewer arguments)
         'd', store key index, due ms, packed entry   park it in a delayed store (a retry,
                                                      a requeue); swept into its stream later
  Returns {committed count, skipped entry ids...} ]]

--!include lib/delayed_add.lua

local group, consumer, wake_channel, bucket_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local i = 5
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
