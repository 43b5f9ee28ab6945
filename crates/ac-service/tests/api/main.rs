//! Integration tests: each spawns the real AC on 127.0.0.1:0 against its own PostgreSQL
//! database (`#[sqlx::test]` creates and drops one per test).

// Helpers outside `#[test]` functions may fail loudly too: this whole crate is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod guest_token;
mod helpers;
mod hostile_input;
mod http;
mod key_withdrawal;
mod keys;
mod listener;
mod lockout;
mod meeting_token;
mod migrations;
mod openapi;
mod seed;
mod service_token;
mod service_token_client;
mod user_token;
