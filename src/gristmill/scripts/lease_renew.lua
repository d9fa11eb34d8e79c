--[[ lease_renew: extend a leader lease only if the caller still holds it (compare and set).
  KEYS[1] lease key (keys.lease(role, prefix))
  ARGV[1] the caller's token   ARGV[2] ttl ms
  Returns 1 if renewed, 0 if the lease expired or another holder has it ]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
