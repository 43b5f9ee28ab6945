-- join: ARGV 3 user_id, 4 display_name, 5 role ('host' | 'guest'), 6 now (RFC 3339),
-- 7 optional: the most guests the lobby may hold, given for a guest's join (a person without
-- an account, DESIGN §12), who always waits, whatever the settings.
-- Replies: {'admitted' | 'waiting' | 'full' | 'lobby_full' | 'removed', participant_count,
--           already_present (0 | 1), seat number (0 unless admitted), lobby_count}
-- Both counts are as the join left the room, read in this one atomic step (GC answers a host's
-- join with them, without reading the room again).
local denied = guard()
if denied then return denied end
local user, name, role, now, max_guests = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local guest = max_guests ~= nil
local count = redis.call('HLEN', PARTICIPANTS)

-- The reply, with the lobby as it is now.
local function answer(outcome, participants, already_present, number)
  return done({outcome, participants, already_present, number, redis.call('SCARD', LOBBY)})
end

-- The host removed them: refused until the meeting ends.
if redis.call('HEXISTS', REMOVED, user) == 1 then
  return answer('removed', count, 0, 0)
end

local stored = redis.call('HGET', PARTICIPANTS, user)
if stored then
  return answer('admitted', count, 1, seat_of(user, stored))
end
if redis.call('SISMEMBER', LOBBY, user) == 1 then
  return answer('waiting', count, 1, 0)
end

if guest then
  if guests_waiting() >= (tonumber(max_guests) or 0) then
    return answer('lobby_full', count, 0, 0)
  end
elseif role == 'host' or not waiting_room_enabled(redis.call('HGET', META, 'settings')) then
  if count >= max_participants() then
    return answer('full', count, 0, 0)
  end
  local number = seat(user, name, role, now, false, false)
  return answer('admitted', count + 1, 0, number)
end

enter_lobby(user, name, now, guest)
return answer('waiting', count, 0, 0)
