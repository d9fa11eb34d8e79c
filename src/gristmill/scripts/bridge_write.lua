--[[ bridge_write: the bridge leader's batch of pub/sub messages into its stream, fenced.
  KEYS[1] lease key of the bridge (keys.lease("bridge:<name>", prefix)), or with ARGV[4]
          'epoch' (Redis Cluster) the stream's fence (keys.bridge_fence(stream)): the highest
          lease epoch that wrote the stream, in the stream's slot
  KEYS[2] the stream
  ARGV[1] the leader's lease token   ARGV[2] approximate MAXLEN of the stream (0: none)
  ARGV[3] 1: write a `channel` field (pattern bridges), 0: do not
  ARGV[4] 'lease' or 'epoch': how the token is checked
  ARGV[5..] pairs: channel, payload (raw bytes as received)
  Returns the number of entries written, or -1 (nothing written) when the token does not hold
  the lease: a paused or partitioned ex-leader cannot write after its successor took over
  ('epoch': after its successor wrote once; the lease key lives in another slot) ]]
if ARGV[4] == 'epoch' then
  local epoch = tonumber(string.match(ARGV[1], '^(%d+):'))
  local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
  if epoch == nil or epoch < fence then return -1 end
  if epoch > fence then redis.call('SET', KEYS[1], epoch) end
elseif redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local maxlen = tonumber(ARGV[2])
local with_channel = ARGV[3] == '1'
local written = 0
for i = 5, #ARGV - 1, 2 do
  if maxlen > 0 then
    if with_channel then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'payload', ARGV[i + 1],
        'channel', ARGV[i])
    else
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'payload', ARGV[i + 1])
    end
  elseif with_channel then
    redis.call('XADD', KEYS[2], '*', 'payload', ARGV[i + 1], 'channel', ARGV[i])
  else
    redis.call('XADD', KEYS[2], '*', 'payload', ARGV[i + 1])
  end
  written = written + 1
end
return written
