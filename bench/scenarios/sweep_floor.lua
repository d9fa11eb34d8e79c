--[[ sweep_floor: the floor under any sweep, as the `sweep` bench's floor rows: XADD ARGV[1]
  entries {schema_id = ARGV[2], payload = ARGV[3]} to a stream and nothing else (no read, no
  removal, no check). A sweep moves each entry with one XADD (no server has a multi-entry
  XADD), so no sweep on this server can beat this rate.
  KEYS[1] target stream   ARGV[1] how many   ARGV[2] schema id   ARGV[3] payload
  Returns the number added ]]
local count = tonumber(ARGV[1])
for _ = 1, count do
  redis.call('XADD', KEYS[1], '*', 'schema_id', ARGV[2], 'payload', ARGV[3])
end
return count
