//! The global controller (GC): Convene's public REST API for meetings.
//!
//! GC owns meetings, participant history, the audit log and the meeting-controller registry in
//! PostgreSQL. It authenticates callers with user tokens verified against AC's published keys
//! (it never signs a token), creates meetings under the org's limits, and later hands joins to a
//! meeting controller. It must never return or log a meeting's join-token secret, never log a
//! display name or an e-mail address, never count an org's meetings on the create path (the
//! limit is an O(1) counter kept by database triggers), and never write live room state, which
//! belongs to MC.
//!
//! Flow: [`config`] → [`startup::Application`] → [`routes`] (auth in [`auth`], metrics and the
//! create span in [`metrics`]) → [`meetings`] (create orchestration) → [`db`] (SQL), with the
//! rules in [`domain`] and errors in [`error`].

pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod meetings;
pub mod metrics;
pub mod routes;
pub mod startup;
