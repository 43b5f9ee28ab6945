-- join: ARGV 3 user_id, 4 display_name, 5 role ('host' | 'guest'), 6 now (RFC 3339).
-- Replies: {'admitted' | 'waiting' | 'full', participant_count, already_present (0 | 1),
--           seat number (0 unless admitted), lobby_count}
-- Both counts are as the join left the room, read in this one atomic step (GC answers a host's
-- join with them, without reading the room again).
local denied = guard()
if denied then return denied end
local user, name, role, now = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local count = redis.call('HLEN', PARTICIPANTS)

-- The reply, with the lobby as it is now.
local function answer(outcome, participants, already_present, number)
  return done({outcome, participants, already_present, number, redis.call('SCARD', LOBBY)})
end

local stored = redis.call('HGET', PARTICIPANTS, user)
if stored then
  return answer('admitted', count, 1, seat_of(user, stored))
end
if redis.call('SISMEMBER', LOBBY, user) == 1 then
  return answer('waiting', count, 1, 0)
end

if role == 'host' or not waiting_room_enabled(redis.call('HGET', META, 'settings')) then
  if count >= max_participants() then
    return answer('full', count, 0, 0)
  end
  local number = seat(user, name, role, now, false)
  return answer('admitted', count + 1, 0, number)
end

-- A user the host rejected may ask again: they wait again.
redis.call('HDEL', REJECTED, user)
redis.call('SADD', LOBBY, user)
redis.call('HSET', LOBBY_DETAILS, user, cjson.encode({display_name = name, waiting_since = now}))
publish('h', user, {type = 'lobby.joined', user_id = user, display_name = name})
return answer('waiting', count, 0, 0)
