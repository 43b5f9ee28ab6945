-- end_room: ARGV 3 reason (what participants are told).
-- Replies: {'ended'} | {'already_gone'} | {'fenced', stored_token}
-- Everyone seated or waiting hears `meeting.ended` before the keys go.
local denied = guard()
if denied then
  if denied[1] == 'not_found' then
    return {'already_gone'}
  end
  return denied
end
publish('rl', nil, {type = 'meeting.ended', reason = ARGV[3]})
redis.call('DEL', META, PARTICIPANTS, LOBBY, LOBBY_DETAILS, SPEAKER, REJECTED, REMOVED)
return {'ended'}
