-- Login failures: attempts in flight, counted apart from verified failures.
--
-- An attempt reserves a place in each of its budgets (account or client id, and client address)
-- before its password or secret is checked, so a burst of parallel guesses cannot check more
-- than the limit. Until now the reservation was the failure itself, taken back on success:
-- correct sign-ins then used up the budget while they were being checked, and attempts refused
-- for another reason were left counted. With the two counts apart, only a verified failure is
-- ever a failure; `failures + in_flight` is what the limit bounds while checks are running.
--
-- A reservation belongs to the window it was made in: when the window restarts, `in_flight`
-- restarts at 0 with it, and the outcome of an attempt reserved in the old window is dropped.
-- That also bounds what a crashed replica can leave behind to one window.

alter table login_failures
    add column in_flight int not null default 0 check (in_flight >= 0);

comment on column login_failures.failures is
    'verified failures (password or secret checked and wrong) in the current window';
comment on column login_failures.in_flight is
    'attempts reserved in the current window whose check has not finished yet';
