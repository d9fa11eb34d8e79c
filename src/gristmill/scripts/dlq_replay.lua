--[[ dlq_replay: move dead-letter entries back to their processor's retry lane, entry by entry
  atomically: the original fields are XADDed to the retry lane and the entry is XDELed from the
  dead lane in the same script, so an entry is never in both lanes and never in neither.
  KEYS[1] dead lane   KEYS[2] retry lane (same hash slot: both derive from the input stream)
  ARGV[1] the number of entries n; then, n times: the entry id in the dead lane, the number of
          field items k (names and values, 2 <= k <= 7000), then those k items
  Returns {moved, skipped}: an entry no longer in the dead lane (replayed or purged by someone
  else since it was read) is skipped, so a replay racing another never writes an entry twice ]]

local dead, retry = KEYS[1], KEYS[2]
local moved, skipped = 0, 0
local pos = 2
for _ = 1, tonumber(ARGV[1]) do
  local id, count = ARGV[pos], tonumber(ARGV[pos + 1])
  local fields = {}
  for j = 1, count do fields[j] = ARGV[pos + 1 + j] end
  pos = pos + 2 + count
  if #redis.call('XRANGE', dead, id, id) == 1 then
    -- add before delete: if the XADD fails (OOM), the entry stays dead rather than vanishing
    redis.call('XADD', retry, '*', unpack(fields))
    redis.call('XDEL', dead, id)
    moved = moved + 1
  else
    skipped = skipped + 1
  end
end
return {moved, skipped}
