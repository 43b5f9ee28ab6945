-- set_participant_fields: ARGV 3 user_id, 4 JSON object of the fields to replace (built by
-- the store from ParticipantUpdate: status, language, hardware_ready).
-- Replies: {'updated', participant JSON} | {'not_a_participant'}
local denied = guard()
if denied then return denied end
local user = ARGV[3]
local stored = redis.call('HGET', PARTICIPANTS, user)
if not stored then
  return done({'not_a_participant'})
end
local record, patch = cjson.decode(stored), cjson.decode(ARGV[4])
for _, field in ipairs({'status', 'language', 'hardware_ready'}) do
  if patch[field] ~= nil then
    record[field] = patch[field]
  end
end
local encoded = cjson.encode(record)
redis.call('HSET', PARTICIPANTS, user, encoded)
return done({'updated', encoded})
