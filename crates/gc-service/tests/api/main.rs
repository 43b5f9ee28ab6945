//! GC's integration tests: each test gets its own database (`#[sqlx::test]`), a real AC and a
//! real GC on ephemeral ports, and talks to them over HTTP.

// Helpers outside `#[test]` functions may fail loudly too: this whole crate is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod concurrency;
mod controllers;
mod create_meeting;
mod creates;
mod events;
mod helpers;
mod housekeeping;
mod idempotency;
mod lifecycle;
mod listener;
mod meeting_tokens;
mod observability;
mod openapi;
mod races;
mod refused_service_tokens;
mod rooms;
mod signaling;
mod storage;
mod validation;
mod visits;
mod web;
mod ws;
