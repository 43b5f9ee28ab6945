-- Organizations: the tenants of Convene. Every user belongs to exactly one, and the org carries
-- the limits GC enforces when meetings are created and joined.

-- A trigger function shared by every table with an `updated_at` column. Keeping the bump in the
-- database means no code path (admin API, seed, a manual fix in psql) can forget it.
create or replace function set_updated_at() returns trigger as $$
begin
    new.updated_at = now();
    return new;
end;
$$ language plpgsql;

create table organizations
(
    -- `gen_random_uuid()` is built into PostgreSQL 13+, so no extension is needed.
    id                           uuid primary key     default gen_random_uuid(),

    -- The human-facing, URL-safe handle of the org. The shape (`^[a-z0-9][a-z0-9-]{1,62}$`) is
    -- validated by AC before it gets here; uniqueness is the database's job because only the
    -- database can decide it race-free.
    slug                         text        not null unique,

    name                         text        not null,

    -- The limits are checked in SQL by GC (the only place those rules live), so they must never
    -- be null or nonsensical: a meeting needs at least two people to be a meeting.
    max_concurrent_meetings      int         not null default 10 check (max_concurrent_meetings > 0),
    max_participants_per_meeting int         not null default 100 check (max_participants_per_meeting >= 2),

    -- Deactivating an org (rather than deleting it) keeps its history intact while refusing
    -- logins of its users.
    is_active                    boolean     not null default true,

    created_at                   timestamptz not null default now(),
    updated_at                   timestamptz not null default now()
);

-- `updated_at` records changes an operator made (through the admin API or the seed), so the
-- trigger watches only those columns. GC's `live_meeting_count` (migration 20261121010001),
-- bumped by trigger on every meeting created or ended, must not rewrite it: that is the hot
-- path, and it would make `updated_at` say nothing. A column added later that an operator
-- edits must be added to this list.
create trigger organizations_set_updated_at
    before update of slug, name, max_concurrent_meetings, max_participants_per_meeting, is_active
    on organizations
    for each row execute function set_updated_at();
