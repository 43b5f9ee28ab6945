-- Service credentials: the OAuth2 clients (GC, MC, administration tools) that obtain service
-- tokens with the client-credentials grant.

create table service_credentials
(
    id           uuid primary key     default gen_random_uuid(),

    -- The public half of the credential, sent in HTTP Basic or in the token request body.
    client_id    text        not null unique,

    -- Argon2id PHC string of the client secret. The secret itself is shown once, when the
    -- credential is created, and is never stored.
    secret_hash  text        not null,

    -- Which kind of service this is (`global-controller`, `meeting-controller`, `admin`); copied
    -- into the token so a gRPC server can check the caller is the service it expects.
    service_type text        not null,

    -- The most a token of this client may carry; a token request can only narrow it.
    scopes       text[]      not null default '{}',

    -- Revoking a client is flipping this flag: tokens already issued live at most one TTL.
    is_active    boolean     not null default true,

    created_at   timestamptz not null default now()
);
