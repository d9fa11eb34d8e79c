--[[ bridge_dedup: a redundant bridge replica's batch, each message written once across replicas.
  KEYS[1] the stream
  KEYS[2] base name of the dedup window (keys.bridge_seen(stream)); the script keeps two hashes,
          <base>:<n> for the current and the previous window of the server's clock (same hash
          slot as the stream: the base carries the stream's tag)
  ARGV[1] window ms   ARGV[2] approximate MAXLEN (0: none)
  ARGV[3] 1: write a `channel` field (pattern bridges), 0: do not
  ARGV[4..] triples: dedup key (a payload digest or the user-named field), channel, payload
  A message whose dedup key is in either hash was written by another replica (or by us) at most
  two windows ago: it is skipped. Otherwise it is written and its key recorded.
  Returns {written, skipped} ]]
local window = tonumber(ARGV[1])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local n = math.floor(now_ms / window)
local current = KEYS[2] .. ':' .. n
local previous = KEYS[2] .. ':' .. (n - 1)
local maxlen = tonumber(ARGV[2])
local with_channel = ARGV[3] == '1'
local written, skipped = 0, 0
for i = 4, #ARGV - 2, 3 do
  local key = ARGV[i]
  if redis.call('HSETNX', current, key, '') == 0 or redis.call('HEXISTS', previous, key) == 1 then
    skipped = skipped + 1
  else
    local args = {'XADD', KEYS[1]}
    if maxlen > 0 then
      args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = maxlen
    end
    args[#args + 1] = '*'; args[#args + 1] = 'payload'; args[#args + 1] = ARGV[i + 2]
    if with_channel then
      args[#args + 1] = 'channel'; args[#args + 1] = ARGV[i + 1]
    end
    redis.call(unpack(args))
    written = written + 1
  end
end
if written + skipped > 0 then
  redis.call('PEXPIRE', current, 2 * window)
end
return {written, skipped}
