-- Signing keys: the Ed25519 key pairs AC signs every JWT with. AC is the only signer in Convene,
-- and every replica of AC must sign with, and publish, the same keys; so they live here.
--
-- Each key signs during one interval of time, [activates_at, retired_at). A rotation publishes
-- the next key before it signs: it is inserted with `activates_at` in the future (AC's
-- activation delay), and the current key's `retired_at` is set to that same moment. Verifiers
-- that fetch the key set in between already know the next key when its first token arrives.
-- All times come from the database's clock, the one clock every replica shares.

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

    -- When the key starts signing. Until then it is published but unused ("pending").
    activates_at            timestamptz not null default now(),

    -- When the key stops signing: the moment its successor activates, so it may lie in the
    -- future while the successor is pending. Null for the newest key, which has no successor.
    retired_at              timestamptz,

    -- How long the key stays in the JWKS once retired: until every token it signed has expired
    -- (retirement + the longest token lifetime + a safety margin). AC deletes the row after
    -- this, so retired private keys do not outlive their use.
    publish_until           timestamptz,

    check ((retired_at is null) = (publish_until is null)),
    check (retired_at is null or retired_at >= activates_at),

    -- At any instant at most one key signs, whatever races between replicas: the signing
    -- intervals may touch but never overlap. This also allows at most one key without a
    -- successor (two open-ended intervals always overlap), so a rotation must end the newest
    -- key's interval exactly where the next one's begins, in one transaction.
    constraint signing_keys_one_signer_at_a_time
        exclude using gist (tstzrange(activates_at, retired_at) with &&)
);
