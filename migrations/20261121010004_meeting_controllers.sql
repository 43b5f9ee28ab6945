-- Meeting-controller registry and meeting ownership (DESIGN §5). MCs register and heartbeat
-- through GC's gRPC API; on a meeting's first join GC assigns it to a healthy, least-loaded MC.
-- Tables only for now: the registry and the assignment logic arrive with the join flow.

create table meeting_controllers
(
    -- The id the MC authenticates as (its service client id), so an MC can only act for itself.
    id                text primary key,

    -- Where clients connect (the `signaling_url` base) and where GC calls the MC.
    ws_url            text        not null,
    grpc_addr         text        not null,

    -- Rooms the MC accepts, and how many it reports holding.
    capacity          int         not null check (capacity >= 0),
    current_load      int         not null default 0 check (current_load >= 0),

    -- An MC whose heartbeat is older than the configured timeout is not assigned new meetings,
    -- and its meetings are reassigned on their next join.
    last_heartbeat_at timestamptz not null default now(),
    registered_at     timestamptz not null default now()
);

create table meeting_assignments
(
    -- One owner per meeting at a time; reassignment updates the row.
    meeting_id    uuid primary key references meetings (id) on delete cascade,

    -- Removing a dead controller drops its assignments: those meetings are reassigned on their
    -- next join, which is what happens to a silent controller anyway.
    controller_id text        not null references meeting_controllers (id) on delete cascade,

    assigned_at   timestamptz not null default now()
);

-- Meetings owned by one controller (takeover when it dies).
create index meeting_assignments_controller_id_idx on meeting_assignments (controller_id);
