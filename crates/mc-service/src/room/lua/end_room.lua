-- end_room: no arguments of its own.
-- Replies: {'ended'} | {'already_gone'} | {'fenced', stored_token}
local denied = guard()
if denied then
  if denied[1] == 'not_found' then
    return {'already_gone'}
  end
  return denied
end
redis.call('DEL', META, PARTICIPANTS, LOBBY, LOBBY_DETAILS, SPEAKER)
return {'ended'}
