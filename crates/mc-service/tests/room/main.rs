//! The room store (`mc_service::room`) against a real Redis and a real Redis Cluster: every
//! scenario runs on both (`<module>::single::<name>` and `<module>::cluster::<name>`).
//!
//! The single-node tests use REDIS_URL (default redis://127.0.0.1:6379) under a key prefix of
//! their own; the cluster tests start a three-primary cluster each (redis-server must be
//! installed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod concurrency;
mod events;
mod faults;
mod fencing;
mod guests;
mod held;
mod hostile;
mod hosts;
mod lobby;
mod moderation;
mod operations;
