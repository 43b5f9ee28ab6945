-- People without an account who join a meeting by its link (DESIGN §12, "Guests without an
-- account").
--
-- A guest has no row in `users`: AC makes a fresh guest id for each guest and signs a token
-- for that one meeting. Their visits are recorded in `participants` like members', under the
-- guest id, so the foreign key from `participants.user_id` to `users` no longer holds for
-- every row. It goes; GC writes only ids taken from tokens AC signed (a user's or a guest's),
-- and AC never deletes users (it deactivates them), so the key guarded nothing GC could break.
alter table participants drop constraint participants_user_id_fkey;

-- One row per guest, written when they ask to join (in the transaction of their
-- `guest_joined` audit row): the name they gave, which the audit log never holds, for the
-- host's view of the meeting's visits. It goes with its meeting.
create table meeting_guests
(
    meeting_id   uuid        not null references meetings (id) on delete cascade,
    guest_id     uuid        not null,
    display_name text        not null check (char_length(display_name) between 1 and 255),
    created_at   timestamptz not null default now(),
    primary key (meeting_id, guest_id)
);

-- A guest's own changes (their join, their leave) are recorded with `actor_type` 'guest'.
alter table audit_logs drop constraint audit_logs_actor_type_check;
alter table audit_logs add constraint audit_logs_actor_type_check
    check (actor_type in ('user', 'guest', 'service', 'system'));
