-- state: read-only; ARGV 1 and 2 are unused. Reply: {'not_found'}
--   | {'state', meta (flat field/value list, `seq` included), participants (flat),
--      lobby members, lobby details (flat), active speaker or nil, rejected (flat),
--      removed (flat)}
local meta = redis.call('HGETALL', META)
if #meta == 0 then
  return {'not_found'}
end
return {'state', meta, redis.call('HGETALL', PARTICIPANTS), redis.call('SMEMBERS', LOBBY),
  redis.call('HGETALL', LOBBY_DETAILS), redis.call('GET', SPEAKER),
  redis.call('HGETALL', REJECTED), redis.call('HGETALL', REMOVED)}
