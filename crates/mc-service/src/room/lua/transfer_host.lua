-- transfer_host: ARGV 3 the host the caller saw (GC's copy), 4 the user to make the host.
-- Replies: {'transferred', host_seq} (also when `to` hosts already: nothing changes)
--        | {'not_host', the room's host ('' for nobody), its host_seq} | {'not_seated'}
--        | {'not_member'}
-- The hand-over of DESIGN §12, as a compare-and-set on the room's host: of two hand-overs by
-- the same host, or a hand-over and the host's leave, exactly one finds the host it expects,
-- so the room never has two hosts.
local denied = guard()
if denied then return denied end
local from, to = ARGV[3], ARGV[4]
local host = current_host()
if host ~= from then
  return {'not_host', host, host_seq()}
end
if to == host then
  return done({'transferred', host_seq()})
end
local stored = redis.call('HGET', PARTICIPANTS, to)
if not stored then
  return {'not_seated'}
end
local record = decode_or_empty(stored)
if record.guest == true or record.member ~= true then
  return {'not_member'}
end
return done({'transferred', set_host(to)})
