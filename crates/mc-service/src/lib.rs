//! The meeting controller (MC): owner of the live state of the meetings GC assigns to it.
//!
//! MC keeps room state in Redis (participants, lobby, active speaker), serves the signaling
//! WebSocket and detects the active speaker. It is the only service that writes room state to
//! Redis; it never talks to PostgreSQL and never signs tokens. This build serves its health and
//! metrics endpoints; rooms, the lobby and signaling come with the issues that build them.

pub mod config;
pub mod room;
pub mod routes;
pub mod startup;
