//! The services together: each test gets its own database (`#[sqlx::test]`), AC and GC on
//! ephemeral ports and the meeting controllers it starts, with real sockets between them.
//!
//! The stack is GC's test stack, shared with GC's integration tests rather than copied: its
//! files are included from `crates/gc-service/tests/api/` under the same module names, so that
//! `crate::helpers` means the same in both (a controller started as a process runs
//! `helpers::meeting_controller_process` of this binary).

// Helpers outside `#[test]` functions may fail loudly too: this whole crate is test code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The shared stack offers more than these tests use (GC's readers of its own tables).
#[allow(dead_code)]
#[path = "../../../gc-service/tests/api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../../../gc-service/tests/api/meetings.rs"]
mod meetings;

mod catalogs;
mod signaling;
mod ws;
