--[[ register_schema: store a schema record and make it the next version of a subject, once.
  Two processes registering the same schema at once must make one version, and a version must
  only be added after the caller checked compatibility against the versions it saw: the
  caller passes the version it expects to create, and a stale expectation is refused.
  KEYS[1] schemas hash (id -> record)   KEYS[2] the subject's version list   KEYS[3] subjects set
  KEYS[4] (optional) the registration epoch, INCR'd when a new record is stored, so readers
          that remembered the id as missing look again
  ARGV[1] schema id   ARGV[2] record bytes   ARGV[3] expected new version (versions seen + 1)
  ARGV[4] subject name
  Returns {status, version, stored record} where status is
    'exists' (the id is already a version of the subject; version is that version),
    'added'  (appended as version; the stored record may be an older one of the same id,
              registered first under another subject), or
    'stale'  (the subject changed since the caller looked; version is its current count) ]]
local position = redis.call('LPOS', KEYS[2], ARGV[1])
if position then
  return {'exists', position + 1, redis.call('HGET', KEYS[1], ARGV[1])}
end
local count = redis.call('LLEN', KEYS[2])
if count + 1 ~= tonumber(ARGV[3]) then
  return {'stale', count, false}
end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 and KEYS[4] then
  redis.call('INCR', KEYS[4])
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
return {'added', count + 1, redis.call('HGET', KEYS[1], ARGV[1])}
