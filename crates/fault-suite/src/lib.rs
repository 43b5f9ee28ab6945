//! The fault suite's parts, shared by its two binaries: `fault-suite` (issue 24,
//! `docs/reliability.md`), which starts a stack of its own and breaks it under load, and
//! `day-in-the-life` (issue 27, [`day`]), which runs a day's traffic against a stack that is
//! already running (the scale stack) and checks its stores with the same checker.

pub mod api;
pub mod check;
pub mod day;
pub mod load;
pub mod process;
pub mod scenarios;
pub mod servers;
pub mod stack;
pub mod webhook_endpoints;
pub mod webhooks;
