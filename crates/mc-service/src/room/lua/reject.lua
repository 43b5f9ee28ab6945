-- reject: ARGV 3 user_id.
-- Replies: {'rejected'} | {'not_in_lobby'}
local denied = guard()
if denied then return denied end
local user = ARGV[3]
if redis.call('SREM', LOBBY, user) == 0 then
  return done({'not_in_lobby'})
end
redis.call('HDEL', LOBBY_DETAILS, user)
return done({'rejected'})
