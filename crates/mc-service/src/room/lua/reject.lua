-- reject: ARGV 3 user_id, 4 reason (what the user is told).
-- Replies: {'rejected'} | {'not_in_lobby'}
-- The user is remembered in `rejected` until they join again, so a socket they open after
-- the host acted is told `rejected` too.
local denied = guard()
if denied then return denied end
local user, reason = ARGV[3], ARGV[4]
if redis.call('SREM', LOBBY, user) == 0 then
  return done({'not_in_lobby'})
end
forget_details(user)
redis.call('HSET', REJECTED, user, reason)
publish('s', user, {type = 'rejected', reason = reason})
publish('h', user, {type = 'lobby.left', user_id = user, reason = 'rejected'})
return done({'rejected'})
