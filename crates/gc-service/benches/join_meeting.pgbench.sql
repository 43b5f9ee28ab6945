-- The writes of an admitted join (`POST /api/v1/meetings/{code}/join`) as a pgbench script, to
-- measure the database's share of a join without HTTP, JWTs, gRPC, Redis and AC. The statement
-- is GC's `db::participants::admit` for one guest, as `use_cases::record_admissions` runs it:
-- `participants_admit` (migration 20261206000001) locks the meeting's row (so an `end` or a
-- leave in flight is waited for), makes the meeting active and records the seat, opens the
-- seat's visit and writes its `participant_admitted` audit row, in one call with the same
-- parameters (seat numbers p + 1: distinct, as the pairs are). This is one join per transaction, which
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

select participants_admit(array[:meeting_id::uuid], array[:org_id::uuid],
                          array[:user_id::uuid], array['guest'], array[:p + 1]::bigint[],
                          array[:user_id::text], array['user'], array['127.0.0.1'],
                          array[null]::text[]);
