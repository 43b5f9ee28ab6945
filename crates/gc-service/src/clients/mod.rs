//! GC's clients of the other services: meeting controllers over gRPC ([`mc`]) and AC's
//! meeting-token endpoint ([`ac`]). Both authenticate with GC's service token.

pub mod ac;
pub mod mc;
pub mod webhooks;
