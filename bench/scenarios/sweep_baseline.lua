--[[ sweep_baseline: the least a sweep can do, as the `sweep` bench's baseline row: move up to
  ARGV[2] members of a plain sorted set, due at or before ARGV[1], into a stream as
  {schema_id = ARGV[3], payload = member}, then remove them. No lease check, no buckets,
  no unpacking: what gristmill's delayed_sweep.lua is measured against.
  KEYS[1] sorted set (score = due ms, member = payload)   KEYS[2] target stream
  ARGV[1] due up to this ms   ARGV[2] at most this many   ARGV[3] schema id
  Returns the number moved ]]
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0,
                           tonumber(ARGV[2]))
for _, member in ipairs(members) do
  redis.call('XADD', KEYS[2], '*', 'schema_id', ARGV[3], 'payload', member)
end
for start = 1, #members, 500 do
  redis.call('ZREM', KEYS[1], unpack(members, start, math.min(start + 499, #members)))
end
return #members
