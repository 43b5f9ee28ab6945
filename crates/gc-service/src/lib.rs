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
//! Flow: [`config`] → [`startup::Application`] (the common service shell) → [`routes`]
//! (thin HTTP handlers; callers authenticated by the extractors of [`auth`]; the create
//! metrics in [`metrics`]) → [`use_cases`] (one module per operation, transport-neutral) →
//! [`db`] (SQL), with the rules in [`domain`] and the one error type in [`error`].

pub mod auth;
pub mod batch;
pub mod client;
pub mod clients;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod routes;
pub mod startup;
pub mod state;
pub mod use_cases;
pub mod web;
