-- update_settings: ARGV 3 settings JSON, 4 max_participants, 5 now, 6 the settings' version
-- (decimal u64; GC raises it with every change it commits).
-- Reply: {'updated' | 'stale', {admitted ids}, {still waiting ids}, participant_count,
--         {the admitted users' seat numbers}, the version the room holds now}
--
-- The room keeps the newest version it was given: a push older than the one stored changes
-- nothing ('stale'), so pushes that race each other leave the room with what PostgreSQL holds
-- last. The same version again stores nothing and tells nobody, but still admits the lobby if
-- the waiting room is off: a push repeated after a failure completes what the first began.
--
-- A capacity below the current count seats nobody new and unseats nobody. With the waiting
-- room off after the change, the lobby is admitted oldest first while seats remain: nobody
-- should wait for a free seat in a room without a waiting room. Guests stay waiting: only the
-- host lets them in (DESIGN §12).
local denied = guard()
if denied then return denied end
local settings, max, now, version = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local stored = redis.call('HGET', META, 'settings_version')
local order = 1
if stored and version then
  order = compare_tokens(version, stored)
end
if order < 0 then
  return done({'stale', {}, lobby_in_order(), redis.call('HLEN', PARTICIPANTS), {}, stored})
end
if order > 0 then
  redis.call('HSET', META, 'settings', settings, 'max_participants', max)
  if version then
    redis.call('HSET', META, 'settings_version', version)
  end
  publish('rl', nil, {type = 'settings.updated', settings = cjson.decode(settings),
    max_participants = tonumber(max)})
end
local held = redis.call('HGET', META, 'settings_version') or ''
if waiting_room_enabled(redis.call('HGET', META, 'settings')) then
  return done({'updated', {}, lobby_in_order(), redis.call('HLEN', PARTICIPANTS), {}, held})
end
local admitted, waiting, count, seats = admit_in_order(now, true)
return done({'updated', admitted, waiting, count, seats, held})
