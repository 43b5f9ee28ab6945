-- set_active_speaker: ARGV 3 user_id, or nothing to clear the speaker.
-- Replies: {'changed', previous_user_id or nil} | {'unchanged'} | {'not_a_participant'}
-- A change is broadcast to the room once; no change, no event.
local denied = guard()
if denied then return denied end
local user = ARGV[3]
local previous = redis.call('GET', SPEAKER)

if user == nil then
  if not previous then
    return done({'unchanged'})
  end
  redis.call('DEL', SPEAKER)
  publish('r', nil, {type = 'active_speaker', user_id = cjson.null, previous_user_id = previous})
  return done({'changed', previous})
end
if redis.call('HEXISTS', PARTICIPANTS, user) == 0 then
  return done({'not_a_participant'})
end
if previous == user then
  return done({'unchanged'})
end
redis.call('SET', SPEAKER, user)
publish('r', nil, {type = 'active_speaker', user_id = user,
  previous_user_id = previous or cjson.null})
return done({'changed', previous})
