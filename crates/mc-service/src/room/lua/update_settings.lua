-- update_settings: ARGV 3 settings JSON, 4 max_participants, 5 now.
-- Reply: {'updated', {admitted ids}, {still waiting ids}, participant_count}
--
-- A capacity below the current count seats nobody new and unseats nobody. With the waiting
-- room off after the change, the lobby is admitted oldest first while seats remain: nobody
-- should wait for a free seat in a room without a waiting room.
local denied = guard()
if denied then return denied end
local settings, max, now = ARGV[3], ARGV[4], ARGV[5]
redis.call('HSET', META, 'settings', settings, 'max_participants', max)
publish('rl', nil, {type = 'settings.updated', settings = cjson.decode(settings),
  max_participants = tonumber(max)})
if waiting_room_enabled(settings) then
  return done({'updated', {}, lobby_in_order(), redis.call('HLEN', PARTICIPANTS)})
end
local admitted, waiting, count = admit_in_order(now)
return done({'updated', admitted, waiting, count})
