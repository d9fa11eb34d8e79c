--[[ lease_release: give a leader lease back only if the caller holds it (compare and delete),
  so a slow ex-holder never deletes its successor's lease.
  KEYS[1] lease key (keys.lease(role, prefix))
  ARGV[1] the caller's token
  Returns 1 if released, 0 if the caller did not hold it ]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
