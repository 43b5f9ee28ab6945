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
-- so. Null for visits recorded before this migration.
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

-- Records the seats rooms gave: row i of the arrays is one seat (meeting, org, user, role, seat
-- number, and the actor, address and user agent of its audit row). One call per batch of
-- admissions (`db::admissions`), one round trip. For each seat it opens a visit and writes its
-- `participant_admitted` audit row, makes the meeting active and keeps its empty clock as the
-- room's order says; returns the number of visits opened.
--
-- Its statements run one after the other, each with a snapshot taken when it starts (a
-- plpgsql function is volatile): the first locks the meetings, so the others see everything a
-- leave of the same meeting committed before. A single statement would decide on a snapshot
-- taken before it waited for the lock, and could reopen a visit that the leave it waited for
-- had just closed (issue 22: the ghost of a join racing a leave).
create function participants_admit(p_meeting uuid[], p_org uuid[], p_user uuid[],
                                   p_role text[], p_seat bigint[], p_actor_id text[],
                                   p_actor_type text[], p_ip text[], p_agent text[])
    returns bigint
    language plpgsql
as
$$
declare
    opened bigint;
begin
    -- The meetings' rows, locked in the order of their ids, so two calls sharing meetings
    -- wait for each other rather than deadlock. Every writer of a meeting's visits (leaves,
    -- the end, reports of a controller) takes the row first.
    perform 1 from meetings where id = any (p_meeting) order by id for update;

    -- Each meeting is active from its first seat, remembers the highest seat recorded, and
    -- stops its empty clock only for a seat above the one it was last seen empty at: an older
    -- seat's admission recorded late must not restart a meeting its room left empty. Such a
    -- late admission starts the clock instead when the room was seen empty before the meeting
    -- was active (the leave was recorded first) and no later seat has been recorded since.
    update meetings m
    set status      = 'active',
        started_at  = coalesce(m.started_at, now()),
        empty_since = case
                          when s.seat > coalesce(m.empty_as_of_seat, 0) then null
                          when coalesce(m.last_seat, 0) <= m.empty_as_of_seat
                              then coalesce(m.empty_since, now())
                          else m.empty_since end,
        last_seat   = greatest(coalesce(m.last_seat, 0), s.seat)
    from (select b.meeting_id, max(b.seat) as seat
          from unnest(p_meeting, p_seat) as b(meeting_id, seat)
          group by b.meeting_id) s
    where m.id = s.meeting_id
      and m.status <> 'ended';

    -- A visit still open of an earlier seat of the same user ended when the room gave the new
    -- one (its leave is late, or was lost): it is closed as `superseded`, which the leave, if
    -- it comes, replaces with its own time and reason.
    update participants p
    set left_at      = greatest(p.joined_at, now()),
        leave_reason = 'superseded'
    from unnest(p_meeting, p_user, p_seat) as b(meeting_id, user_id, seat)
    where p.meeting_id = b.meeting_id
      and p.user_id = b.user_id
      and p.left_at is null
      and (p.seat is null or p.seat < b.seat)
      and exists (select 1 from meetings m where m.id = b.meeting_id and m.status <> 'ended')
      and not exists (select 1 from participants q
                      where q.meeting_id = b.meeting_id and q.user_id = b.user_id
                        and q.seat >= b.seat);

    -- The seats' visits: one per seat, and none for a seat whose row exists already (its
    -- admission was recorded, or its leave came first and wrote it closed) or that an
    -- even later seat of the user has replaced.
    with b as (select distinct on (b.meeting_id, b.user_id) b.*
               from unnest(p_meeting, p_org, p_user, p_role, p_seat, p_actor_id, p_actor_type,
                           p_ip, p_agent)
                        as b(meeting_id, org_id, user_id, role, seat, actor_id, actor_type, ip,
                             agent)
               order by b.meeting_id, b.user_id, b.seat desc),
         visits as (
             insert into participants (meeting_id, user_id, role, seat)
                 select b.meeting_id, b.user_id, b.role, b.seat
                 from b
                 where exists (select 1 from meetings m
                               where m.id = b.meeting_id and m.status <> 'ended')
                   and not exists (select 1 from participants q
                                   where q.meeting_id = b.meeting_id and q.user_id = b.user_id
                                     and q.seat >= b.seat)
                 on conflict do nothing
                 returning meeting_id, user_id, role),
         audit as (
             insert into audit_logs (org_id, actor_id, actor_type, action, resource_type,
                                     resource_id, details, ip, user_agent)
                 select b.org_id, b.actor_id, b.actor_type, 'participant_admitted', 'meeting',
                        v.meeting_id::text,
                        jsonb_build_object('user_id', v.user_id, 'role', v.role),
                        b.ip::inet, b.agent
                 from visits v
                          join b on b.meeting_id = v.meeting_id and b.user_id = v.user_id)
    select count(*) into opened from visits;
    return opened;
end;
$$;
