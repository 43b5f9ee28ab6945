-- leave: ARGV 3 user_id.
-- Replies: {'left', 'participant' | 'lobby', remaining_participants, cleared_speaker (0 | 1)}
--        | {'not_present', participant_count}
local denied = guard()
if denied then return denied end
local user = ARGV[3]

if redis.call('HDEL', PARTICIPANTS, user) == 1 then
  local cleared = 0
  if redis.call('GET', SPEAKER) == user then
    redis.call('DEL', SPEAKER)
    cleared = 1
  end
  return done({'left', 'participant', redis.call('HLEN', PARTICIPANTS), cleared})
end
if redis.call('SREM', LOBBY, user) == 1 then
  redis.call('HDEL', LOBBY_DETAILS, user)
  return done({'left', 'lobby', redis.call('HLEN', PARTICIPANTS), 0})
end
return done({'not_present', redis.call('HLEN', PARTICIPANTS)})
