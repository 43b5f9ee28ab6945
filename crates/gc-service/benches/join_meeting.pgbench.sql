-- The writes of an admitted join (`POST /api/v1/meetings/{code}/join`) as a pgbench script, to
-- measure the database's share of a join without HTTP, JWTs, gRPC, Redis and AC. The statement
-- is GC's `db::participants::admit` for one guest, as `use_cases::record_admissions` runs it:
-- the meeting's row share-locked (so an `end` in flight is waited for), the meeting made active if
-- it is not (a no-op for these live rooms), the visit opened, and its `participant_admitted`
-- audit row, in one statement with the same parameters. This is one join per transaction, which
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

with occupied as (
    update meetings
    set status = 'active', started_at = coalesce(started_at, now()), empty_since = null
    where id = :meeting_id
      and (status = 'scheduled' or (status = 'active' and empty_since is not null))
    returning id
),
live as (
    select id from meetings
    where id = :meeting_id and status <> 'ended' and not exists (select 1 from occupied)
    for share
),
visits as (
    insert into participants (meeting_id, user_id, role)
    select :meeting_id, u.id, u.role
    from unnest(array[:user_id::uuid], array['guest']::text[]) as u(id, role)
    where exists (select 1 from occupied) or exists (select 1 from live)
    on conflict (meeting_id, user_id) where left_at is null do nothing
    returning user_id, role
)
insert into audit_logs (org_id, actor_id, actor_type, action, resource_type,
                        resource_id, details, ip, user_agent)
select :org_id, :user_id, 'user', 'participant_admitted', 'meeting', :meeting_id,
       jsonb_build_object('user_id', v.user_id, 'role', v.role), '127.0.0.1'::inet, null
from visits v;
