-- The floor under an admission, as a pgbench script: what any record of a join must write,
-- the visit and its audit row, in one statement (one round trip, one transaction), with no
-- lock and no check.
-- `scripts/bench-admission.sh` runs it beside GC's admission (`join_meeting.pgbench.sql`)
-- on the same database and pairs, so the admission's cost reads as a ratio to this.
--
-- The pairs are chosen as in `join_meeting.pgbench.sql` (client c's k-th transaction: pair
-- p = k * clients + c, room p mod rooms, user (p / rooms + p mod rooms) mod users), from the
-- same helper tables.

\set p :k * :clients + :client_id
\set k :k + 1
\set room :p % :rooms
\set user (:p / :rooms + :p % :rooms) % :users
select r.meeting_id, u.user_id
from bench_join_rooms r, bench_join_users u
where r.i = :room and u.i = :user \gset

with visit as (
    insert into participants (meeting_id, user_id, role, seat)
    values (:meeting_id, :user_id, 'guest', :p + 1)
    returning meeting_id, user_id
)
insert into audit_logs (org_id, actor_id, actor_type, action, resource_type, resource_id,
                        details, ip, user_agent)
select :org_id, :user_id, 'user', 'participant_admitted', 'meeting', v.meeting_id::text,
       jsonb_build_object('user_id', v.user_id, 'role', 'guest'), '127.0.0.1', null
from visit v;
