-- admit: ARGV 3 user_id, 4 now.
-- Replies: {'admitted', participant_count, already_admitted (0 | 1), seat number}
--        | {'full'} | {'not_in_lobby'}
local denied = guard()
if denied then return denied end
local user, now = ARGV[3], ARGV[4]
local count = redis.call('HLEN', PARTICIPANTS)

local stored = redis.call('HGET', PARTICIPANTS, user)
if stored then
  return done({'admitted', count, 1, seat_of(user, stored)})
end
if redis.call('SISMEMBER', LOBBY, user) == 0 then
  return done({'not_in_lobby'})
end
if count >= max_participants() then
  return done({'full'})
end
local number = admit_from_lobby(user, now)
return done({'admitted', count + 1, 0, number})
