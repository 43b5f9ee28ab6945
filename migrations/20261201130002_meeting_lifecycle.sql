-- What the meeting lifecycle (join, lobby, leave, end, housekeeping) needs beyond the tables
-- of migration 20261121010002–4.

-- Since when nobody has been in the meeting; the empty-meeting timeout ends it once this is
-- older than EMPTY_MEETING_TIMEOUT. Null while someone is present (or nobody has joined yet:
-- a meeting nobody joined expires through SCHEDULED_MEETING_TTL instead).
alter table meetings
    add column empty_since timestamptz;

-- The housekeeping jobs look for meetings to end: active ones that have been empty too long,
-- scheduled ones nobody joined. Partial, so ended meetings (most rows) cost nothing.
create index meetings_empty_since_idx on meetings (empty_since) where status = 'active';
create index meetings_scheduled_idx on meetings (coalesce(scheduled_start_time, created_at))
    where status = 'scheduled';

-- Retention deletes meetings ended long ago, oldest first.
create index meetings_ended_at_idx on meetings (ended_at) where status = 'ended';

-- A user has at most one open visit of a meeting: admitting someone already present records
-- nothing new, and a crash between MC's and GC's writes cannot leave two open rows.
create unique index participants_one_open_visit on participants (meeting_id, user_id)
    where left_at is null;

-- `GET /history?role=guest|any`: the meetings a user attended.
-- (participants_user_history_idx (user_id, joined_at desc) already serves it.)

-- A meeting controller is healthy while its heartbeat is fresh; assignment picks the least
-- loaded healthy one with spare capacity.
create index meeting_controllers_heartbeat_idx on meeting_controllers (last_heartbeat_at);
