-- Users: people who sign in with an e-mail address and a password and receive user tokens.

create table users
(
    id            uuid primary key     default gen_random_uuid(),

    -- A user belongs to one org. Orgs are deactivated, not deleted, so `restrict` protects the
    -- history of users (and, through GC, of their meetings) from an accidental delete.
    org_id        uuid        not null references organizations (id) on delete restrict,

    -- Stored as the user typed it (for display); uniqueness is case-insensitive, see the index
    -- below, because `Ada@Example.com` and `ada@example.com` reach the same mailbox.
    email         text        not null,

    -- An Argon2id hash in PHC string format (it carries its own salt and parameters, so the
    -- parameters can be raised later without a migration). Never leaves AC.
    password_hash text        not null,

    display_name  text        not null,

    -- Roles as a text array rather than a join table: there are three of them, they are read on
    -- every login and copied into the token, and the check keeps typos out of the database.
    -- An empty array is allowed: such a user can sign in but not create meetings.
    roles         text[]      not null default '{}'
        check (roles <@ array ['user', 'org_admin', 'admin']::text[]),

    is_active     boolean     not null default true,

    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

-- E-mail addresses are unique across the platform, case-insensitively. Login looks users up
-- through the same expression, so this index also serves every sign-in.
create unique index users_email_lower_key on users (lower(email));

-- Listing and counting an org's users.
create index users_org_id_idx on users (org_id);

create trigger users_set_updated_at
    before update on users
    for each row execute function set_updated_at();
