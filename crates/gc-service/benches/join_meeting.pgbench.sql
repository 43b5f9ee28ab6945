-- The writes of an admitted join (`POST /api/v1/meetings/{code}/join`) as a pgbench script, to
-- measure the database's share of a join without HTTP, JWTs, gRPC, Redis and AC. The statement
-- is GC's `db::participants::admit` for one guest (`ADMIT_SQL`), as
-- `use_cases::record_admissions` runs it: the meeting's row updated (so an `end` or a leave in
-- flight is waited for), made active and its last seat raised, the seat's visit opened and its
-- events recorded (`meeting_started` for a first seat, `participant_admitted`), in one statement with the same parameters (seat numbers
-- p + 1: distinct, as the pairs are), answering the meeting's status and start as the join shows
-- them. Keep it in step with `ADMIT_SQL`. This is one join per transaction, which
-- is what GC writes when it is idle: a busy GC puts the admissions queued meanwhile in one
-- statement (`db::participants::admit_batch`), so its joins may commit faster than this.
--
-- Each transaction seats a new (user, room) pair, as the join benchmark's requests do: client
-- c's k-th transaction takes pair p = k * clients + c, room p mod rooms and user
-- (p / rooms + p mod rooms) mod users, from helper tables loaded before the run:
--   bench_join_rooms (i int primary key, meeting_id uuid)   live meetings of the org, i from 0
--   bench_join_users (i int primary key, user_id uuid)      active users of the org, i from 0
-- Their ids are fetched by one primary-key read before the transaction (pgbench variables can
-- only hold what a query returns), which stands for the reads GC makes before its own.
--
--   pgbench -n -M prepared -c 16 -j 2 -T 10 -D k=0 -D clients=16 -D rooms=<n> -D users=<n> \
--       -D org_id=<organizations.id> -f crates/gc-service/benches/join_meeting.pgbench.sql \
--       "$DATABASE_URL"
--
-- Distinct pairs need rooms × users above the transactions of the run.

\set p :k * :clients + :client_id
\set k :k + 1
\set room :p % :rooms
\set user (:p / :rooms + :p % :rooms) % :users
select r.meeting_id, u.user_id
from bench_join_rooms r, bench_join_users u
where r.i = :room and u.i = :user \gset

with b as (
    select distinct on (b.meeting_id, b.user_id) b.*
    from unnest(array[:meeting_id::uuid], array[:org_id::uuid], array[:user_id::uuid], array['guest'], array[:p + 1]::bigint[], array[:user_id::text],
                array['user'], array['127.0.0.1'], array[null]::text[])
             as b(meeting_id, org_id, user_id, role, seat, actor_id, actor_type, ip, user_agent)
    order by b.meeting_id, b.user_id, b.seat desc
),
was as (
    select m.id from meetings m
    where m.id = any(array[:meeting_id::uuid]) and case m.status when 'scheduled' then true else false end
    order by m.id
    for no key update
),
live as (
    update meetings m
    set status = 'active',
        started_at = coalesce(m.started_at, now()),
        empty_since = case
            when (select max(b.seat) from b where b.meeting_id = m.id)
                 > coalesce(m.empty_as_of_seat, 0) then null
            when coalesce(m.last_seat, 0) <= m.empty_as_of_seat
                then coalesce(m.empty_since, now())
            else m.empty_since end,
        last_seat = greatest(coalesce(m.last_seat, 0),
                             (select max(b.seat) from b where b.meeting_id = m.id))
    where m.id = any(array[:meeting_id::uuid]) and m.status <> 'ended'
      and cardinality(array(select id from was)) >= 0
    returning m.id, m.status, m.started_at, m.id = any(array(select id from was)) as started
),
newest as (
    select b.* from b
    where b.meeting_id in (select id from live)
      and coalesce((select max(q.seat) from participants q
                    where q.meeting_id = b.meeting_id and q.user_id = b.user_id) < b.seat,
                   true)
),
superseded as (
    update participants p
    set left_at = greatest(p.joined_at, now()), leave_reason = 'superseded'
    where p.id = any (array(
        select o.id
        from newest n
        cross join lateral (
            select q.id from participants q
            where q.meeting_id = n.meeting_id and q.user_id = n.user_id and q.left_at is null
              and (q.seat is null or q.seat < n.seat)
            limit 64) o))
),
visits as (
    insert into participants (meeting_id, user_id, role, seat)
    select n.meeting_id, n.user_id, n.role, n.seat from newest n
    on conflict do nothing
    returning meeting_id, user_id, role
),
events as (
    select b.org_id, l.id as meeting_id, b.actor_id, b.actor_type, b.ip, b.user_agent,
           'meeting_started' as action, '{}'::jsonb as details
    from live l
    cross join lateral (select * from b where b.meeting_id = l.id order by b.seat limit 1) b
    where l.started
    union all
    select n.org_id, v.meeting_id, n.actor_id, n.actor_type, n.ip, n.user_agent,
           'participant_admitted', jsonb_build_object('user_id', v.user_id, 'role', v.role)
    from visits v
    join newest n on n.meeting_id = v.meeting_id and n.user_id = v.user_id
),
recorded as (
    insert into audit_logs (org_id, actor_id, actor_type, action, resource_type, resource_id,
                            details, ip, user_agent)
    select e.org_id, e.actor_id, e.actor_type, e.action, 'meeting', e.meeting_id::text,
           e.details, e.ip::inet, e.user_agent
    from events e
),
outboxed as (
    insert into webhook_deliveries (webhook_id, event_type, payload)
    select w.id, t.type,
           webhook_payload(t.type, now(), e.org_id, e.meeting_id, e.actor_id, e.details, null::text)
    from events e
             cross join lateral (select webhook_event_type(e.action) as type) t
             join webhooks w on w.org_id = e.org_id and w.enabled and t.type = any (w.events)
)
select l.id, l.status, l.started_at,
       (select count(*) from visits v where v.meeting_id = l.id) as opened
from live l;
