-- Idempotency keys of `POST /api/v1/meetings`: a client that retries a create (after a timeout,
-- a dropped connection) with the same `Idempotency-Key` gets the meeting of its first attempt
-- instead of a second meeting.
--
-- A key row is written by the same statement that creates the meeting, so it exists exactly when
-- the create committed: a failed create stores nothing and its retry simply runs again.

create table idempotency_keys
(
    -- Keys are scoped per user: two users may pick the same key without seeing each other's
    -- meetings. No foreign key: the user is the meeting's host, already checked by the create.
    user_id      uuid        not null,

    -- What the client sent: 1–255 visible ASCII characters.
    key          text        not null check (key ~ '^[!-~]{1,255}$'),

    -- SHA-256 of the canonical request. The same key with another request is a client bug and
    -- is answered 409 rather than silently returning a meeting that does not match.
    request_hash bytea       not null check (octet_length(request_hash) = 32),

    -- The meeting the first request created. If retention deletes it, the key goes too.
    meeting_id   uuid        not null references meetings (id) on delete cascade,

    -- Keys are honoured for 24 hours; after that the same key creates a new meeting.
    created_at   timestamptz not null default now(),

    primary key (user_id, key)
);

-- Lets GC's janitor delete expired keys without scanning the table.
create index idempotency_keys_created_at_idx on idempotency_keys (created_at);

-- Deleting a meeting (the retention job) cascades here; without this index every deleted
-- meeting would scan the table.
create index idempotency_keys_meeting_id_idx on idempotency_keys (meeting_id);
