-- What lets PostgreSQL apply the room's changes in the room's order, whatever order GC's
-- writes reach it in (issue 22: racing config changes, a join racing a leave).
--
-- The room (MC's Redis) decides who is present and with which settings; GC then records each
-- decision here, after the room made it. Two requests that race reach the room in one order and
-- PostgreSQL possibly in the other. Each decision therefore carries the room's number for it,
-- and a write that is older than what is stored changes nothing.

-- Seats. The room numbers every seat it gives (`seat`, strictly increasing within a room and,
-- being seeded from the clock when a room is created, across the rooms a meeting may have
-- had). A visit records the seat it is the history of: the admission that records a seat and
-- the leave that ends it may then arrive in either order. The leave writes the visit closed if
-- the admission has not written it yet, and the admission then finds it closed and leaves it
-- so (`db::participants`). Null for visits recorded before this migration.
alter table participants
    add column seat bigint;

-- One row per seat: the admission and the leave of one seat, racing, insert one row between
-- them (the second takes the conflict path).
create unique index participants_one_row_per_seat on participants (meeting_id, user_id, seat)
    where seat is not null;

alter table meetings
    -- The version of the settings and `max_participants`: every change that commits raises it
    -- by one, under the row's lock. The room stores the version of what it holds and takes
    -- only a newer one, so pushes that arrive out of order cannot leave it with older settings.
    add column settings_version bigint not null default 1,
    -- The highest seat recorded for this meeting, and the room's seat number when it was last
    -- seen empty. A mark "empty as of seat C" is stale if a seat above C has been recorded, and
    -- an admission of seat S ends the empty clock only if S is above the mark's C: so the
    -- empty-meeting clock ends up as the room's last word says, in whatever order the leave
    -- that emptied the room and the admission before it are recorded.
    add column last_seat bigint,
    add column empty_as_of_seat bigint;


-- A user may have more than one visit of a meeting open for a moment: an admission of a later
-- seat recorded before the leave of the earlier one (the leave closes it when it comes, and the
-- admission closes it as `superseded` when it sees it). The unique index made the later seat's
-- admission record nothing in that case, and the earlier seat's leave then closed the only
-- visit of a user still seated. The rule that matters is one row per seat (above); the index
-- stays for the lookups of a user's open visits.
drop index participants_one_open_visit;
create index participants_open_visits on participants (meeting_id, user_id) where left_at is null;

-- An admission and a leave look a user's visits of a meeting up by both columns (the seat's
-- row, a later seat, an open visit to supersede). With the meeting alone indexed, the planner,
-- estimating a visit or two per meeting, read every visit of the meeting for each of them:
-- hundreds in a large meeting. The end's "every open visit of the meeting" reads the prefix.
drop index participants_meeting_id_idx;
create index participants_meeting_user_idx on participants (meeting_id, user_id);

-- Every admission now updates its meeting's row (`last_seat`), naming `status` in the update
-- (active from the first seat), which fired the slot-release trigger on every join only for it
-- to find nothing to release. It now runs only when the status or the org really changes (its
-- checks refuse the org change and the reopening of an ended meeting, as before), and on
-- deletes.
drop trigger meetings_release_live_slot on meetings;
create trigger meetings_release_live_slot
    after update of status, org_id on meetings
    for each row
    when (old.status is distinct from new.status or old.org_id is distinct from new.org_id)
execute function meetings_release_live_slot();
create trigger meetings_release_live_slot_on_delete
    after delete on meetings
    for each row
execute function meetings_release_live_slot();
