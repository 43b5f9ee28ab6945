//! The meeting controller (MC): owner of the live state of the meetings GC assigns to it.
//!
//! MC keeps room state in Redis (participants, lobby, active speaker), serves the signaling
//! WebSocket and detects the active speaker. It is the only service that writes room state to
//! Redis; it never talks to PostgreSQL and never signs tokens. This build serves its health and
//! metrics endpoints, GC's calls on its rooms ([`grpc`], over the [`room`] store), its place in
//! GC's registry ([`registration`]), the rooms it holds alive ([`held`]), and the signaling
//! WebSocket ([`signaling`]) with the active-speaker detector ([`speaker`]).

pub mod config;
pub mod error;
pub mod grpc;
pub mod held;
pub mod metrics;
pub mod registration;
pub mod room;
pub mod routes;
pub mod signaling;
pub mod speaker;
pub mod startup;
pub mod state;
#[cfg(test)]
mod test_gc;
