-- The storage limit of a create, for the create benchmark (scripts/bench-create.sh): a meeting
-- row and its audit row inserted with every value given, no org or user lookup and no limit
-- check. The benchmark runs it with the `meetings_reserve_live_slot` trigger disabled on its
-- scratch database, so what remains is what any create must pay: the heap and index inserts,
-- the foreign-key checks and the commit.
--
--   pgbench -n -M prepared -c 16 -j 2 -T 30 \
--       -D org_id=<organizations.id> -D host_id=<users.id> \
--       -f crates/gc-service/benches/create_meeting_plain.pgbench.sql "$DATABASE_URL"

with m as (
    insert into meetings (id, org_id, host_id, meeting_code, display_name, max_participants,
                          join_token_secret)
    values (gen_random_uuid(), :org_id::uuid, :host_id::uuid,
            (select string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
                                      1 + floor(random() * 62)::int, 1), '')
             from generate_series(1, 12)),
            'pgbench-plain', 100,
            decode(md5(random()::text) || md5(random()::text), 'hex'))
    returning id, org_id, host_id, meeting_code, max_participants
)
insert into audit_logs (org_id, actor_id, actor_type, action, resource_type, resource_id,
                        details, ip, user_agent)
select m.org_id, m.host_id::text, 'user', 'meeting_created', 'meeting', m.id::text,
       jsonb_build_object('meeting_code', m.meeting_code,
                          'max_participants', m.max_participants,
                          'idempotency_key', false),
       '127.0.0.1'::inet, 'pgbench'
from m;
