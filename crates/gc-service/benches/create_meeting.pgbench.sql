-- The create statement of `POST /api/v1/meetings` (gc_service::db::meetings::CREATE_MEETING_SQL)
-- as a pgbench script, to measure the database's share of a create without HTTP, JWT and JSON.
-- Same CTEs, same joins and the same triggers; the values GC computes in Rust are drawn in SQL
-- here (a random 12-character code, a random 32-byte secret without pgcrypto), and no
-- idempotency key is sent (the NULL-key branch, as for most creates).
--
-- Needs an org with a `max_concurrent_meetings` above the number of transactions, and one of
-- its active users. Run in prepared mode (as sqlx does), which also turns `:org_id` and
-- `:host_id` into parameters:
--
--   pgbench -n -M prepared -c 16 -j 2 -T 30 \
--       -D org_id=<organizations.id> -D host_id=<users.id> \
--       -f crates/gc-service/benches/create_meeting.pgbench.sql "$DATABASE_URL"
--
-- Afterwards: `update meetings set status = 'ended', ended_at = now() where display_name =
-- 'pgbench' and status <> 'ended'` gives the org's places back (the triggers free the slots).

with m as (
    insert into meetings (id, org_id, host_id, meeting_code, display_name, max_participants,
                          waiting_room_enabled, enable_transcription, enable_e2e_encryption,
                          require_auth, recording_enabled, allow_guests,
                          allow_external_participants, join_token_secret, scheduled_start_time)
    select gen_random_uuid(), o.id, u.id,
           (select string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
                                     1 + floor(random() * 62)::int, 1), '')
            from generate_series(1, 12)),
           'pgbench',
           coalesce(null::int, least(100, o.max_participants_per_meeting)),
           true, false, true, true, false, false, false,
           decode(md5(random()::text) || md5(random()::text), 'hex'),
           null::timestamptz
    from organizations o
    join users u on u.id = :host_id::uuid and u.org_id = o.id and u.is_active
    where o.id = :org_id::uuid
      and (null::int is null or null::int between 2 and o.max_participants_per_meeting)
      and (null::text is null
           or not exists (select 1 from idempotency_keys k
                          where k.user_id = :host_id::uuid and k.key = null::text))
    returning id, org_id, host_id, meeting_code, display_name, status, max_participants,
              waiting_room_enabled, enable_transcription, enable_e2e_encryption, require_auth,
              recording_enabled, allow_guests, allow_external_participants,
              scheduled_start_time, created_at, started_at, ended_at
),
audit as (
    insert into audit_logs (org_id, actor_id, actor_type, action, resource_type, resource_id,
                            details, ip, user_agent)
    select m.org_id, m.host_id::text, 'user', 'meeting_created', 'meeting', m.id::text,
           jsonb_build_object('meeting_code', m.meeting_code,
                              'max_participants', m.max_participants,
                              'idempotency_key', false),
           '127.0.0.1'::inet, 'pgbench'
    from m
),
idem as (
    insert into idempotency_keys (user_id, key, request_hash, meeting_id)
    select m.host_id, null, null, m.id from m where null::text is not null
)
select * from m;
