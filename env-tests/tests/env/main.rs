//! Env-tests: black-box tests of a deployed Convene stack (DESIGN §9). They reach it only as a
//! client does, at the URLs of the environment (`support::config`), and each test makes its own
//! org and users, so the tests run in parallel (one process each under nextest) and again and
//! again against the same stack. `env-tests/README.md` says how to run them.

// Helpers outside `#[test]` functions may fail loudly too: this whole crate is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod create;
mod guests;
mod keys;
mod lifecycle;
mod metrics;
mod signaling;
mod standard_clients;
mod support;
mod webhooks;
