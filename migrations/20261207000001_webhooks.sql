-- Webhooks (DESIGN §13): an organization's endpoints, and the outbox of deliveries to them.
--
-- A delivery row is written by the statement that records the change it reports
-- (`gc_service::db::events::record_events!`), in the same transaction as the change and its
-- audit row: a change that rolls back leaves no delivery, and one that commits leaves one per
-- enabled webhook of its org subscribed to its event type. GC's delivery workers, on any
-- number of replicas, claim due rows with `for update skip locked` and lease them while they
-- send (`gc_service::db::webhooks`).

-- An org's endpoints. The secret signs every delivery (Standard Webhooks); it is stored sealed
-- under GC_WEBHOOK_KEY (AES-256-GCM, the webhook's id as associated data), as AC seals its
-- signing keys, and is shown only when it is made (create, rotate). During a rotation the
-- previous secret signs too, until `previous_secret_expires_at`.
create table webhooks
(
    id                        uuid primary key,
    org_id                    uuid        not null references organizations (id) on delete cascade,
    url                       text        not null check (char_length(url) between 8 and 2048),
    -- Event types (`meeting.created`, ...), checked by GC; never empty.
    events                    text[]      not null check (cardinality(events) between 1 and 16),
    description               text        not null default ''
        check (char_length(description) <= 500),
    enabled                   boolean     not null default true,
    -- Why GC disabled it itself: `gone` (the endpoint answered 410). Null when enabled, or
    -- when its org disabled it.
    disabled_reason           text check (disabled_reason in ('gone')),
    secret_sealed             bytea       not null,
    secret_nonce              bytea       not null,
    previous_secret_sealed    bytea,
    previous_secret_nonce     bytea,
    previous_secret_expires_at timestamptz,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now(),
    check ((previous_secret_sealed is null) = (previous_secret_expires_at is null))
);

-- The webhooks of an org, as the API lists them and as every recorded change looks them up.
create index webhooks_org_idx on webhooks (org_id, created_at);

-- The outbox: one row per (webhook, event). Its id is the `webhook-id` header of every
-- attempt, so a receiver can drop a repeated delivery. The body is stored as sent: every
-- attempt signs the same bytes.
create table webhook_deliveries
(
    id              uuid primary key default gen_random_uuid(),
    webhook_id      uuid        not null references webhooks (id) on delete cascade,
    event_type      text        not null,
    payload         text        not null,
    -- `pending` until a 2xx (`delivered`), or until the retry window ran out (`failed`).
    status          text        not null default 'pending'
        check (status in ('pending', 'delivered', 'failed')),
    attempts        int         not null default 0,
    -- When a worker may claim it next: its backoff, or the lease of an attempt in flight.
    next_attempt_at timestamptz not null default now(),
    created_at      timestamptz not null default now(),
    -- Retries stop (`failed`) once the retry window has passed since this time: the event's
    -- time, or the last retry asked for by hand.
    window_started_at timestamptz not null default now(),
    last_attempt_at timestamptz,
    -- The last attempt's HTTP status (null: no answer) and what went wrong, if anything.
    last_status     int,
    last_error      text check (char_length(last_error) <= 500),
    delivered_at    timestamptz
);

-- What workers claim: due pending rows, oldest first.
create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at)
    where status = 'pending';
-- A webhook's deliveries, newest first (`GET /webhooks/{id}/deliveries`).
create index webhook_deliveries_webhook_idx on webhook_deliveries (webhook_id, created_at desc);
-- Retention of delivered rows (WEBHOOK_RETENTION_DAYS).
create index webhook_deliveries_delivered_idx on webhook_deliveries (delivered_at)
    where status = 'delivered';
create index webhook_deliveries_failed_idx on webhook_deliveries (last_attempt_at)
    where status = 'failed';

-- The webhook event type of a recorded change (`audit_logs.action`), or null for changes no
-- webhook reports (rejections, settings, host changes).
create function webhook_event_type(action text) returns text
    language sql
    immutable
    parallel safe
return case action
           when 'meeting_created' then 'meeting.created'
           when 'meeting_started' then 'meeting.started'
           when 'meeting_ended' then 'meeting.ended'
           when 'participant_admitted' then 'participant.joined'
           when 'participant_left' then 'participant.left'
           when 'participant_removed' then 'participant.removed'
           when 'guest_joined' then 'lobby.waiting'
           when 'participant_waiting' then 'lobby.waiting'
    end;

-- The body of the delivery of one recorded change (DESIGN §13): `{"type", "timestamp",
-- "data"}`. `data` holds ids, the meeting's code, times, roles and reasons; display names only
-- in `participant.*` and `lobby.waiting`, read here from the user or the guest (or `p_name`,
-- for a guest the same statement records); never e-mail addresses, tokens or secrets. The
-- statement's own inserts are not visible here: a new meeting's code comes from its details.
create function webhook_payload(p_type text, p_at timestamptz, p_org uuid, p_meeting uuid,
                                p_actor text, p_details jsonb, p_name text) returns text
    language sql
    stable
    parallel safe
as
$$
with m as (select meeting_code from meetings where id = p_meeting),
     who as (select coalesce(p_details ->> 'user_id', p_details ->> 'guest_id')::uuid as id),
     person as (select who.id,
                       u.id is null as guest,
                       coalesce(u.display_name, g.display_name, p_name) as display_name
                from who
                         left join users u on u.id = who.id
                         left join meeting_guests g on g.meeting_id = p_meeting and g.guest_id = who.id)
select jsonb_build_object(
               'type', p_type,
               'timestamp', to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'data', jsonb_build_object('org_id', p_org, 'meeting_id', p_meeting,
                                          'meeting_code', coalesce(p_details ->> 'meeting_code',
                                                                   (select meeting_code from m)))
                   || case p_type
                          when 'meeting.created' then jsonb_build_object(
                                  'created_by', p_actor,
                                  'max_participants', p_details -> 'max_participants')
                          when 'meeting.ended' then jsonb_build_object(
                                  'reason', case p_details ->> 'reason'
                                                when 'ended_by_host' then 'host'
                                                else p_details ->> 'reason' end,
                                  'participants_present', p_details -> 'participants_present')
                          when 'participant.joined' then (select jsonb_build_object(
                                  'participant_id', id, 'guest', guest, 'role',
                                  p_details -> 'role', 'display_name', display_name) from person)
                          when 'participant.left' then (select jsonb_build_object(
                                  'participant_id', id, 'guest', guest, 'reason',
                                  p_details -> 'reason', 'display_name', display_name) from person)
                          when 'participant.removed' then (select jsonb_build_object(
                                  'participant_id', id, 'guest', guest, 'removed_by', p_actor,
                                  'display_name', display_name) from person)
                          when 'lobby.waiting' then (select jsonb_build_object(
                                  'participant_id', id, 'guest', guest,
                                  'display_name', display_name) from person)
                          else '{}'::jsonb
                   end)::text
$$;
