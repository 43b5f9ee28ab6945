-- Signing keys: the Ed25519 key pairs AC signs every JWT with. AC is the only signer in Convene,
-- and every replica of AC must sign with, and publish, the same keys; so they live here.

create table signing_keys
(
    id                      uuid primary key     default gen_random_uuid(),

    -- The `kid` of the JWT header and of the JWKS entry.
    kid                     text        not null unique,

    -- The raw 32-byte Ed25519 public key, exactly what the JWK's `x` encodes.
    public_key              bytea       not null check (octet_length(public_key) = 32),

    -- The PKCS#8 private key, sealed with AES-256-GCM under the master key that only AC's
    -- environment holds (the kid is the associated data, so a ciphertext cannot be moved to
    -- another row). A database dump alone therefore cannot forge tokens.
    private_key_ciphertext  bytea       not null,
    private_key_nonce       bytea       not null check (octet_length(private_key_nonce) = 12),

    created_at              timestamptz not null default now(),

    -- Null for the one active key, set when a rotation replaces it.
    retired_at              timestamptz,

    -- How long a retired key stays in the JWKS: until every token it signed has expired
    -- (retirement + the longest token lifetime + a safety margin).
    publish_until           timestamptz,

    check ((retired_at is null) = (publish_until is null))
);

-- At most one active key, whatever races between replicas: rotation retires the old key and
-- inserts the new one in one transaction, and this index refuses a second active row.
create unique index signing_keys_one_active_key on signing_keys ((true)) where retired_at is null;
