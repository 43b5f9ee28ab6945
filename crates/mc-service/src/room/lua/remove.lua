-- remove: ARGV 3 user_id, 4 reason (`removed_by_host`, what the user is told).
-- The host takes someone out (DESIGN §12), seated or waiting: they are told `removed` first
-- (their sockets close), then the room or the host hears them go. They are remembered in
-- `removed` until the meeting ends, so their joins, and sockets they open later, are refused.
-- Replies as leave.lua's: {'left', 'participant' | 'lobby', remaining_participants,
--   cleared_speaker (0 | 1), last seat number, the seat's record (JSON; nil for the lobby)}
--   | {'not_present', participant_count, last seat number} (remembered all the same)
--   | {'is_host'} (nothing changed)
local denied = guard()
if denied then return denied end
local user, reason = ARGV[3], ARGV[4]
-- The host hands the meeting over before leaving it; the room's host, not GC's copy, decides.
if user == current_host() then
  return {'is_host'}
end
redis.call('HSET', REMOVED, user, reason)

local stored = redis.call('HGET', PARTICIPANTS, user)
if stored then
  stored = unseat(user, stored)
  publish('s', user, {type = 'removed', reason = reason})
  publish('r', user, {type = 'participant.left', user_id = user, reason = reason})
  local cleared = clear_speaker_if(user)
  return done({'left', 'participant', redis.call('HLEN', PARTICIPANTS), cleared, last_seat(),
    stored})
end
if redis.call('SREM', LOBBY, user) == 1 then
  forget_details(user)
  publish('s', user, {type = 'removed', reason = reason})
  publish('h', user, {type = 'lobby.left', user_id = user, reason = reason})
  return done({'left', 'lobby', redis.call('HLEN', PARTICIPANTS), 0, last_seat()})
end
return done({'not_present', redis.call('HLEN', PARTICIPANTS), last_seat()})
