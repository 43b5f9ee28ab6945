-- set_participant_fields: ARGV 3 user_id, 4 JSON object of the fields to replace (built by
-- the store from ParticipantUpdate: status, language, hardware_ready, connection), 5 optional:
-- the connection the seat must still have ('' for none), so a socket that was replaced cannot
-- mark its successor's seat.
-- Replies: {'updated', participant JSON} | {'not_a_participant'} (also when the connection
-- differs)
-- Changes of the fields clients see are broadcast as one `participant.updated`.
local denied = guard()
if denied then return denied end
local user = ARGV[3]
local stored = redis.call('HGET', PARTICIPANTS, user)
if not stored then
  return done({'not_a_participant'})
end
local record, patch = cjson.decode(stored), cjson.decode(ARGV[4])
if not connection_is(record, ARGV[5]) then
  return done({'not_a_participant'})
end
local event, changed = {type = 'participant.updated', user_id = user}, false
for _, field in ipairs({'status', 'language', 'hardware_ready', 'connection'}) do
  if patch[field] ~= nil then
    if field ~= 'connection' and cjson.encode(patch[field]) ~= cjson.encode(record[field]) then
      event[field] = patch[field]
      changed = true
    end
    record[field] = patch[field]
  end
end
local encoded = cjson.encode(record)
redis.call('HSET', PARTICIPANTS, user, encoded)
if changed then
  publish('r', user, event)
end
return done({'updated', encoded})
