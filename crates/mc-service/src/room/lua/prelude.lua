-- Shared head of every room script (scripts.rs puts it before each script's body).
--
-- KEYS: 1 meta, 2 participants, 3 lobby, 4 lobby_details, 5 active_speaker, 6 rejected,
-- 7 removed; all carry the room's {code} hash tag, so they are in one slot.
-- ARGV: 1 the caller's fencing token (decimal u64), 2 the safety TTL in milliseconds, then the
-- script's own arguments from 3 on.
--
-- Every reply is an array whose first element names the outcome.
local META, PARTICIPANTS, LOBBY, LOBBY_DETAILS, SPEAKER, REJECTED, REMOVED =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local TOKEN, TTL_MS = ARGV[1], ARGV[2]
-- The room's event channel: the meta key's name with `events` for `meta`, so it carries the
-- same prefix and {code} tag.
local CHANNEL = string.sub(META, 1, #META - 4) .. 'events'

-- Publishes one event of the room, in the same atomic step as the change it reports. Events
-- are numbered by the meta field `seq`, which a snapshot (state.lua) returns too, so a socket
-- can drop the events its snapshot already holds. The message is
--   <seq> <audience> <subject length> <subject><event JSON>
-- with audience letters r (seated), l (waiting), h (the host), s (the subject user), and the
-- event JSON exactly as clients receive it (docs/redis.md, "Events").
local function publish(audience, subject, event)
  subject = subject or ''
  local seq = redis.call('HINCRBY', META, 'seq', 1)
  redis.call('PUBLISH', CHANNEL,
    seq .. ' ' .. audience .. ' ' .. #subject .. ' ' .. subject .. cjson.encode(event))
end

-- publish() for an event whose JSON the caller wrote itself (an empty list, which cjson would
-- write as an object).
local function publish_json(audience, subject, json)
  subject = subject or ''
  local seq = redis.call('HINCRBY', META, 'seq', 1)
  redis.call('PUBLISH', CHANNEL, seq .. ' ' .. audience .. ' ' .. #subject .. ' ' .. subject .. json)
end

-- Every write ends here: the room's keys live TTL_MS more. A missing key is left missing.
local function refresh_ttl()
  for i = 1, #KEYS do
    redis.call('PEXPIRE', KEYS[i], TTL_MS)
  end
end

-- Refreshes the TTLs, then answers: the last step of every script that passed the guard.
local function done(reply)
  refresh_ttl()
  return reply
end

-- Whether a participant record's `connection` is `expected`: nil expects nothing (always
-- true), '' expects no connection.
local function connection_is(record, expected)
  if expected == nil then
    return true
  end
  local connection = record.connection
  if type(connection) ~= 'string' then
    connection = ''
  end
  return connection == expected
end

-- Compares two decimal u64 strings without leading zeros by length, then digit by digit:
-- Lua numbers are doubles and cannot tell 2^53 from 2^53 + 1.
local function compare_tokens(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y and -1 or 1
    end
  end
  return 0
end

-- nil when the caller owns the room, else the reply that refuses the write.
local function guard()
  local stored = redis.call('HGET', META, 'fencing_token')
  if not stored then
    return {'not_found'}
  end
  if stored ~= TOKEN then
    return {'fenced', stored}
  end
  return nil
end

local function max_participants()
  return tonumber(redis.call('HGET', META, 'max_participants')) or 0
end

-- A missing or unreadable setting counts as on: the secure default.
local function waiting_room_enabled(settings_json)
  local ok, settings = pcall(cjson.decode, settings_json or '')
  return not (ok and type(settings) == 'table' and settings.waiting_room_enabled == false)
end

local function decode_or_empty(json)
  local ok, value = pcall(cjson.decode, json or '')
  if ok and type(value) == 'table' then
    return value
  end
  return {}
end

-- The number of the last seat the room gave (0 before the first). Seats are numbered so that
-- GC can record the room's decisions in the room's order (docs/redis.md, "Seat numbers").
local function last_seat()
  return tonumber(redis.call('HGET', META, 'last_seat')) or 0
end

-- The next seat's number: one more than the last, which a room seeds from the clock (in
-- milliseconds) at its first seat, so that a room created again for the same meeting (its keys
-- expired or Redis lost them) numbers its seats above the ones it gave before. The numbers stay
-- far below 2^53 (Lua's exact integers) and below 10^14, which cjson writes out exactly.
local function next_seat()
  if redis.call('HEXISTS', META, 'last_seat') == 0 then
    local now = redis.call('TIME')
    redis.call('HSET', META, 'last_seat', now[1] .. string.format('%03d', math.floor(now[2] / 1000)))
  end
  return redis.call('HINCRBY', META, 'last_seat', 1)
end

-- Seats a user and tells the room; returns the seat's number. Records are encoded here, by
-- cjson, whatever bytes a name holds. `from_lobby`: the user waited and was let in, so their
-- first socket is told `admitted` even if it connects after the host acted. `guest`: a person
-- without an account (DESIGN §12), marked so in the record and the event. `member`: a member of
-- the meeting's org, who may be made the host (never shown to clients).
local function seat(user, display_name, role, now, from_lobby, guest, member)
  local number = next_seat()
  redis.call('HDEL', REJECTED, user)
  local record = {
    status = 'admitted',
    language = cjson.null,
    hardware_ready = cjson.null,
    display_name = display_name,
    role = role,
    joined_at = now,
    from_lobby = from_lobby,
    connection = cjson.null,
    seat = number,
  }
  local joined = {type = 'participant.joined', user_id = user, display_name = display_name,
    role = role}
  if guest then
    record.guest = true
    joined.guest = true
  end
  if member then
    record.member = true
  end
  redis.call('HSET', PARTICIPANTS, user, cjson.encode(record))
  publish('r', user, joined)
  return number
end

-- The number of a seated user's seat. A seat given before seats were numbered gets its number
-- now, once, so that every seat GC hears of has one.
local function seat_of(user, stored)
  local record = decode_or_empty(stored)
  if type(record.seat) == 'number' and record.seat > 0 then
    return record.seat
  end
  record.seat = next_seat()
  redis.call('HSET', PARTICIPANTS, user, cjson.encode(record))
  return record.seat
end

-- Takes a seated user's record out of the seats (numbering the seat first if it has no number
-- yet) and returns the record as it was stored. The caller tells the room.
local function unseat(user, stored)
  seat_of(user, stored)
  stored = redis.call('HGET', PARTICIPANTS, user)
  redis.call('HDEL', PARTICIPANTS, user)
  return stored
end

-- Clears the active speaker if it is `user` (who has just lost their seat) and tells the room;
-- 1 when it was cleared, else 0.
local function clear_speaker_if(user)
  if redis.call('GET', SPEAKER) ~= user then
    return 0
  end
  redis.call('DEL', SPEAKER)
  publish('r', nil, {type = 'active_speaker', user_id = cjson.null, previous_user_id = user})
  return 1
end

-- Guests in the lobby now. The meta field `guests_waiting` counts them: every script that puts
-- a guest in the lobby or takes one out keeps it. A room that has no count yet (made before
-- the count was kept) counts once, by one pass over the lobby's details, and keeps the count
-- from then on.
local function guests_waiting()
  local kept = redis.call('HGET', META, 'guests_waiting')
  if kept then
    return tonumber(kept) or 0
  end
  local count = 0
  for _, details in ipairs(redis.call('HVALS', LOBBY_DETAILS)) do
    if decode_or_empty(details).guest == true then
      count = count + 1
    end
  end
  redis.call('HSET', META, 'guests_waiting', count)
  return count
end

-- Adds `by` to the count of guests waiting, when the room keeps one.
local function count_guests(by)
  if redis.call('HEXISTS', META, 'guests_waiting') == 1 then
    redis.call('HINCRBY', META, 'guests_waiting', by)
  end
end

-- Drops a user's lobby details (the caller takes them out of the lobby set), keeping the
-- count of guests waiting.
local function forget_details(user)
  if decode_or_empty(redis.call('HGET', LOBBY_DETAILS, user)).guest == true then
    count_guests(-1)
  end
  redis.call('HDEL', LOBBY_DETAILS, user)
end

-- Puts a user in the lobby and tells the host. A user the host rejected may ask again: they
-- wait again. `guest`: a person without an account, marked so in the details and the event.
local function enter_lobby(user, name, now, guest, member)
  redis.call('HDEL', REJECTED, user)
  redis.call('SADD', LOBBY, user)
  local details = {display_name = name, waiting_since = now}
  local waiting = {type = 'lobby.joined', user_id = user, display_name = name}
  if guest then
    details.guest = true
    waiting.guest = true
    count_guests(1)
  end
  if member then
    details.member = true
  end
  redis.call('HSET', LOBBY_DETAILS, user, cjson.encode(details))
  publish('h', user, waiting)
end

-- Whether a waiting user is a guest (DESIGN §12): only the host lets guests in.
local function waits_as_guest(user)
  return decode_or_empty(redis.call('HGET', LOBBY_DETAILS, user)).guest == true
end


-- Moves a waiting user to a seat with the role `guest` and tells them, the host and the room
-- (in that order: the user's socket learns it is seated before the room hears of it); the
-- caller has checked that a seat is free. Returns the seat's number.
local function admit_from_lobby(user, now)
  local details = decode_or_empty(redis.call('HGET', LOBBY_DETAILS, user))
  local name = details.display_name
  if type(name) ~= 'string' then
    name = ''
  end
  redis.call('SREM', LOBBY, user)
  forget_details(user)
  publish('s', user, {type = 'admitted'})
  publish('h', user, {type = 'lobby.left', user_id = user, reason = 'admitted'})
  return seat(user, name, 'guest', now, true, details.guest == true, details.member == true)
end

-- The lobby oldest first (waiting_since is fixed-width RFC 3339, so text order is time
-- order), ties broken by user id. Byte comparison, not '<' on strings, which follows the locale.
local function bytes_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

local function lobby_in_order()
  local members = redis.call('SMEMBERS', LOBBY)
  local since = {}
  for _, user in ipairs(members) do
    local details = decode_or_empty(redis.call('HGET', LOBBY_DETAILS, user))
    since[user] = type(details.waiting_since) == 'string' and details.waiting_since or ''
  end
  table.sort(members, function(a, b)
    if since[a] ~= since[b] then
      return bytes_less(since[a], since[b])
    end
    return bytes_less(a, b)
  end)
  return members
end

-- Admits the lobby in order while seats remain; returns the admitted, the still waiting, the
-- count of seats taken, and the admitted users' seat numbers (in the order of `admitted`).
-- `members_only`: guests stay waiting whatever the seats (a settings change admits the lobby;
-- only the host lets a guest in).
local function admit_in_order(now, members_only)
  local admitted, waiting, seats = {}, {}, {}
  local count, max = redis.call('HLEN', PARTICIPANTS), max_participants()
  for _, user in ipairs(lobby_in_order()) do
    if count < max and not (members_only and waits_as_guest(user)) then
      seats[#seats + 1] = admit_from_lobby(user, now)
      count = count + 1
      admitted[#admitted + 1] = user
    else
      waiting[#waiting + 1] = user
    end
  end
  return admitted, waiting, count, seats
end

-- The room's host: a user id, or '' while nobody hosts (DESIGN §12).
local function current_host()
  return redis.call('HGET', META, 'host_id') or ''
end

-- The meeting's creator, who takes the role back when they join while nobody hosts. A room
-- assigned before creators were stored learns it at its first change of host (set_host).
local function creator()
  return redis.call('HGET', META, 'creator_id') or current_host()
end

-- The number of the room's last change of host (0 before the first).
local function host_seq()
  return tonumber(redis.call('HGET', META, 'host_seq')) or 0
end

-- The lobby as `host.granted` gives it to a new host, oldest first, in the shape of welcome's
-- `lobby`. Written as JSON text: cjson writes an empty table as an object, not a list.
local function lobby_json()
  local parts = {}
  for _, user in ipairs(lobby_in_order()) do
    local details = decode_or_empty(redis.call('HGET', LOBBY_DETAILS, user))
    local entry = {
      user_id = user,
      display_name = type(details.display_name) == 'string' and details.display_name or '',
      waiting_since = type(details.waiting_since) == 'string' and details.waiting_since or '',
    }
    if details.guest == true then
      entry.guest = true
    end
    parts[#parts + 1] = cjson.encode(entry)
  end
  return '[' .. table.concat(parts, ',') .. ']'
end

-- Sets a seated user's role in their record and tells the room (and them).
local function set_role(user, role)
  local stored = redis.call('HGET', PARTICIPANTS, user)
  if not stored then
    return
  end
  local record = decode_or_empty(stored)
  record.role = role
  redis.call('HSET', PARTICIPANTS, user, cjson.encode(record))
  publish('r', user, {type = 'participant.updated', user_id = user, role = role})
end

-- Makes `to` the host ('' for nobody), in one step with everything that follows from it: the
-- previous host, if still seated, becomes a guest; `to` is told it hosts and given the lobby
-- (`host.granted`); with nobody, the waiting are told (`lobby.no_host`). Returns the change's
-- number (host_seq), which GC records the change under so that reports arriving out of order
-- cannot undo a newer change.
local function set_host(to)
  local from = current_host()
  if redis.call('HEXISTS', META, 'creator_id') == 0 then
    redis.call('HSET', META, 'creator_id', from)
  end
  redis.call('HSET', META, 'host_id', to)
  local number = redis.call('HINCRBY', META, 'host_seq', 1)
  if from ~= '' and from ~= to then
    set_role(from, 'guest')
  end
  if to ~= '' then
    set_role(to, 'host')
    publish_json('s', to, '{"type":"host.granted","lobby":' .. lobby_json() .. '}')
  else
    publish('l', nil, {type = 'lobby.no_host'})
  end
  return number
end

-- The member of the meeting's org who has been seated longest (the lowest seat number, ties by
-- user id), or '' when no seated person is a member (guests and people of other orgs never
-- host).
local function successor()
  local best, best_seat = '', nil
  local all = redis.call('HGETALL', PARTICIPANTS)
  for i = 1, #all, 2 do
    local record = decode_or_empty(all[i + 1])
    if record.member == true and record.guest ~= true then
      local number = tonumber(record.seat) or 0
      if best_seat == nil or number < best_seat
          or (number == best_seat and bytes_less(all[i], best)) then
        best, best_seat = all[i], number
      end
    end
  end
  return best
end
