--[[ trim_consumed: approximate retention that never drops an entry a group still needs.
  The cut is the older of the retention point (length or age) and the group floor: for every
  group, its oldest pending entry, else its last delivered id. Trimming is by MINID ~, so
  Redis removes whole nodes only: the stream may keep a little more than asked.
  KEYS[1] stream
  ARGV[1] maxlen (0: no length limit)   ARGV[2] min age ms (0: no age limit)   ARGV[3] now ms
  Returns the number of entries removed ]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local maxlen, min_age, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local length = redis.call('XLEN', KEYS[1])

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function older(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  if am ~= bm then return am < bm end
  return as < bs
end

local cut = nil
if maxlen > 0 and length > maxlen then
  -- ids are millisecond times: estimate the id at position length - maxlen by interpolation
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][1]
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1][1]
  local first_ms = parse(first)
  local last_ms = parse(last)
  local at = first_ms + math.floor((last_ms - first_ms) * (length - maxlen) / length)
  cut = tostring(at) .. '-0'
end
if min_age > 0 then
  local age_cut = tostring(now - min_age) .. '-0'
  if cut == nil or older(age_cut, cut) then cut = age_cut end
end
if cut == nil then return 0 end

for _, info in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  local floor = fields['last-delivered-id']
  if tonumber(fields['pending']) > 0 then
    floor = redis.call('XPENDING', KEYS[1], fields['name'])[2]
  end
  if older(floor, cut) then cut = floor end
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', cut)
