//! GC's integration tests: each test gets its own database (`#[sqlx::test]`), a real AC and a
//! real GC on ephemeral ports (and the meeting controllers a test of GC needs), and talks to
//! them over HTTP and gRPC. What tests the services together, the signaling WebSocket and the
//! metric catalogs, is in `crates/system-tests`, which shares `helpers.rs` and `meetings.rs`.

// Helpers outside `#[test]` functions may fail loudly too: this whole crate is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod assignment;
mod auth;
mod concurrency;
mod controllers;
mod create_meeting;
mod creates;
mod events;
mod faults;
mod guests;
mod helpers;
mod hosts;
mod housekeeping;
mod idempotency;
mod lifecycle;
mod listener;
mod meeting_tokens;
mod meetings;
mod moderation;
mod observability;
mod openapi;
mod races;
mod refused_service_tokens;
mod rooms;
mod storage;
mod validation;
mod visits;
mod web;
mod webhook_keys;
mod webhook_races;
mod webhooks;
