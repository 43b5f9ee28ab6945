-- leave: ARGV 3 user_id, 4 reason (`left`, `connection_lost`, ...), 5 optional: the
-- connection the seat must still have (a socket id; '' for none), so that a reconnect grace
-- that ran out cannot unseat a user who reconnected meanwhile.
-- Replies: {'left', 'participant' | 'lobby', remaining_participants, cleared_speaker (0 | 1),
--           last seat number, the seat's record (JSON; nil for the lobby),
--           host_seq of the succession this leave made (0: none), the new host ('' for nobody)}
--        | {'not_present', participant_count, last seat number} (also when the seat's
--           connection differs)
-- The last seat number tells GC that every seat numbered up to it, other than one the user
-- holds now, has ended: a leave recorded late cannot close a visit of a later seat.
--
-- The host's seat ending while others stay seated passes the role on in the same step (DESIGN
-- §12): to the org member seated longest, else to nobody. A host who leaves an empty room
-- stays its host.
local denied = guard()
if denied then return denied end
local user, reason, expected = ARGV[3], ARGV[4], ARGV[5]

local stored = redis.call('HGET', PARTICIPANTS, user)
if stored then
  if not connection_is(decode_or_empty(stored), expected) then
    return done({'not_present', redis.call('HLEN', PARTICIPANTS), last_seat()})
  end
  -- A seat given before seats were numbered gets its number as it ends.
  stored = unseat(user, stored)
  publish('rs', user, {type = 'participant.left', user_id = user, reason = reason})
  local cleared = clear_speaker_if(user)
  local remaining = redis.call('HLEN', PARTICIPANTS)
  local changed, next_host = 0, ''
  if remaining > 0 and user == current_host() then
    next_host = successor()
    changed = set_host(next_host)
  end
  return done({'left', 'participant', remaining, cleared, last_seat(), stored, changed,
    next_host})
end
if expected == nil and redis.call('SREM', LOBBY, user) == 1 then
  forget_details(user)
  publish('hs', user, {type = 'lobby.left', user_id = user, reason = reason})
  return done({'left', 'lobby', redis.call('HLEN', PARTICIPANTS), 0, last_seat()})
end
return done({'not_present', redis.call('HLEN', PARTICIPANTS), last_seat()})
