-- Participants: the history of who was in which meeting, with which role, and when they left.
-- Live presence is MC's state in Redis; this table is what remains afterwards (for `GET
-- /history?role=guest|any` and for audits).

create table participants
(
    id           uuid primary key     default gen_random_uuid(),

    -- History goes with its meeting when the retention job deletes the meeting.
    meeting_id   uuid        not null references meetings (id) on delete cascade,
    user_id      uuid        not null references users (id) on delete restrict,

    -- A guest is any participant who is not the host (DESIGN §11).
    role         text        not null check (role in ('host', 'guest')),

    joined_at    timestamptz not null default now(),
    left_at      timestamptz,
    -- Why the participant left (`left`, `connection_lost`, `meeting_ended`, `rejected`, …);
    -- free text so MC can add reasons without a migration.
    leave_reason text,

    check (left_at is null or left_at >= joined_at)
);

-- Participants of one meeting (the end of a meeting closes every open row).
create index participants_meeting_id_idx on participants (meeting_id);

-- Meetings a user attended, newest first (`GET /history?role=guest|any`).
create index participants_user_history_idx on participants (user_id, joined_at desc);
