-- join: ARGV 3 user_id, 4 display_name, 5 role GC saw ('host' | 'guest'; the room decides, see
-- below), 6 now (RFC 3339), 7 the most guests the lobby may hold for a guest's join (a person
-- without an account, DESIGN §12, who always waits, whatever the settings), '' otherwise,
-- 8 optional: '1' for a member of the meeting's org (who may be made the host).
-- Replies: {'admitted' | 'waiting' | 'full' | 'lobby_full' | 'removed', participant_count,
--           already_present (0 | 1), seat number (0 unless admitted), lobby_count,
--           role given ('host' | 'guest'), host_seq of a change this join made (0: none),
--           the room's host_seq and host ('' for nobody) after the join}
-- Both counts are as the join left the room, read in this one atomic step (GC answers a host's
-- join with them, without reading the room again).
--
-- The room, not GC, says who hosts: the user the room's `host_id` names is seated as the host
-- whatever GC saw (GC's copy may lag a succession), and anyone else as a guest. While nobody
-- hosts, the meeting's creator takes the role back by joining. The reply names the room's host
-- and its number, so GC can record a change it missed (its write failed after the room made
-- it).
local denied = guard()
if denied then return denied end
local user, name, now, max_guests = ARGV[3], ARGV[4], ARGV[6], ARGV[7]
local guest = max_guests ~= nil and max_guests ~= ''
local member = ARGV[8] == '1' and not guest
local count = redis.call('HLEN', PARTICIPANTS)
local host = current_host()
local role, reclaims = 'guest', false
if not guest and user == host then
  role = 'host'
elseif not guest and host == '' and user == creator() then
  role, reclaims = 'host', true
end

-- The reply, with the lobby as it is now.
local function answer(outcome, participants, already_present, number, changed)
  return done({outcome, participants, already_present, number, redis.call('SCARD', LOBBY),
    role, changed or 0, host_seq(), current_host()})
end

-- The host removed them: refused until the meeting ends.
if redis.call('HEXISTS', REMOVED, user) == 1 then
  return answer('removed', count, 0, 0)
end

local stored = redis.call('HGET', PARTICIPANTS, user)
if stored then
  role = decode_or_empty(stored).role == 'host' and 'host' or 'guest'
  return answer('admitted', count, 1, seat_of(user, stored))
end
if redis.call('SISMEMBER', LOBBY, user) == 1 then
  if not reclaims then
    role = 'guest'
    return answer('waiting', count, 1, 0)
  end
  -- The creator waited while someone hosted, and nobody does now: they leave the lobby for
  -- the host's seat below (capacity permitting), told as any admitted user is.
  if count >= max_participants() then
    role = 'guest'
    return answer('waiting', count, 1, 0)
  end
  redis.call('SREM', LOBBY, user)
  forget_details(user)
  publish('s', user, {type = 'admitted'})
  publish('h', user, {type = 'lobby.left', user_id = user, reason = 'admitted'})
end

if guest then
  if guests_waiting() >= (tonumber(max_guests) or 0) then
    return answer('lobby_full', count, 0, 0)
  end
elseif role == 'host' or not waiting_room_enabled(redis.call('HGET', META, 'settings')) then
  if count >= max_participants() then
    return answer('full', count, 0, 0)
  end
  local number = seat(user, name, role, now, false, false, member)
  local changed = 0
  if reclaims then
    -- The creator back while nobody hosts: the seat above already says `host`.
    redis.call('HSET', META, 'host_id', user)
    changed = redis.call('HINCRBY', META, 'host_seq', 1)
  end
  return answer('admitted', count + 1, 0, number, changed)
end

role = 'guest'
enter_lobby(user, name, now, guest, member)
if host == '' then
  publish('s', user, {type = 'lobby.no_host'})
end
return answer('waiting', count, 0, 0)
