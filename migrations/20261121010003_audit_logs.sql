-- Audit log: who did what to which resource, from where. Each row is written in the same
-- transaction as the change it records (`meeting_created`, `meeting_ended`,
-- `participant_admitted`, `participant_rejected`, `settings_changed`), so the log can neither
-- miss a change nor record one that was rolled back.

create table audit_logs
(
    -- An identity column: append-only, cheap to generate, and it orders rows of equal
    -- `created_at`.
    id            bigint generated always as identity primary key,

    -- No foreign keys on purpose: the log must outlive what it describes (a meeting deleted by
    -- retention, a user removed later), and an append-only table should not lock other rows.
    org_id        uuid        not null,
    -- The user id or the service client id; null for the system itself (expiry, retention).
    actor_id      text,
    actor_type    text        not null check (actor_type in ('user', 'service', 'system')),

    action        text        not null check (action ~ '^[a-z][a-z_]{0,63}$'),
    resource_type text        not null,
    resource_id   text        not null,

    -- Action-specific facts. Never secrets, and no display names or e-mail addresses.
    details       jsonb       not null default '{}'::jsonb,

    -- The client as GC saw it: the socket peer, or the X-Forwarded-For address when GC is
    -- configured to trust its proxy. Null for actions without a client (system jobs).
    ip            inet,
    user_agent    text check (char_length(user_agent) <= 512),

    created_at    timestamptz not null default now()
);

-- An org's log in time order, the way it is read (and exported).
create index audit_logs_org_created_at_idx on audit_logs (org_id, created_at);
