-- assign: ARGV 3 owner, 4 meeting_id, 5 host_id ('' while nobody hosts), 6 max_participants,
-- 7 settings JSON, 8 the settings' version (decimal u64, as in update_settings; '' for none),
-- 9 optional: the meeting's creator (else the host), 10 optional: the number of GC's last
-- recorded change of host (host_seq), which a new room's changes of host number above.
-- Replies: {'created'} | {'refreshed'} | {'took_over', previous_owner, previous_token}
--        | {'fenced', stored_token}
-- Only a new room takes the host from GC: a room that exists knows better (a hand-over or a
-- succession GC may not have recorded yet).
local owner, meeting_id, host_id, max, settings, version, creator_id, seq =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
if version == '' then
  version = nil
end
local stored = redis.call('HGET', META, 'fencing_token')

if not stored then
  -- Without meta there is no room. Keys left over from one whose meta expired first are
  -- stale, and a new room must not inherit them.
  redis.call('DEL', PARTICIPANTS, LOBBY, LOBBY_DETAILS, SPEAKER, REJECTED)
  redis.call('HSET', META, 'meeting_id', meeting_id, 'host_id', host_id,
    'max_participants', max, 'settings', settings, 'fencing_token', TOKEN, 'owner', owner)
  redis.call('HSET', META, 'creator_id', (creator_id ~= nil and creator_id ~= '') and creator_id
    or host_id, 'host_seq', tonumber(seq) or 0)
  if version then
    redis.call('HSET', META, 'settings_version', version)
  end
  return done({'created'})
end

local order = compare_tokens(TOKEN, stored)
local previous_owner = redis.call('HGET', META, 'owner') or ''
-- Two owners can never share a token: an equal token from another MC is refused.
if order < 0 or (order == 0 and previous_owner ~= owner) then
  return {'fenced', stored}
end

-- GC's database is the source of the settings and the capacity, so they are taken from the
-- request, unless the room holds a newer version of them already (an UpdateSettings that
-- overtook this assignment). Seats and the lobby stay as they are: the new owner carries on
-- with them.
local held = redis.call('HGET', META, 'settings_version')
if not (held and version) or compare_tokens(version, held) >= 0 then
  redis.call('HSET', META, 'max_participants', max, 'settings', settings)
  if version then
    redis.call('HSET', META, 'settings_version', version)
  end
end
redis.call('HSET', META, 'fencing_token', TOKEN, 'owner', owner)
if order == 0 then
  return done({'refreshed'})
end
return done({'took_over', previous_owner, stored})
