-- Login failures: the counters behind the sign-in rate limits (per account and per client IP).
--
-- They live in PostgreSQL rather than in process memory so that every AC replica sees the same
-- counts (an attacker spreading guesses across replicas gains nothing), and rather than on the
-- users table so that guesses against unknown e-mail addresses are counted, and answered,
-- exactly like guesses against real ones.

create table login_failures
(
    -- `acct:<lowercased e-mail>` or `ip:<client address>`.
    key          text        primary key,

    -- A fixed window: it opens at the first failure and the count starts over once it has
    -- lasted the configured length.
    window_start timestamptz not null,
    failures     int         not null check (failures >= 0)
);

-- Lets a janitor delete windows that ended long ago without scanning the table.
create index login_failures_window_start_idx on login_failures (window_start);
