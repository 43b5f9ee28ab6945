//! Code that at least two Convene services use today, and nothing else.
//!
//! - [`shell`]: the process shell of every service: listeners with connection, header-time and
//!   idle bounds, background jobs, readiness, and an orderly stop on SIGTERM.
//! - [`http`]: axum pieces every HTTP service needs (strict JSON, client address, bearer
//!   token), [`http::layers`], the middleware stack every HTTP router wears, and
//!   [`http::health`], the one `/health/live` answer.
//! - [`auth`]: the [`auth::Authenticated`] extractor every service authenticates callers with.
//! - [`error`]: the error envelope and the shared error codes, with their HTTP and gRPC mapping
//!   (the code itself travels in a gRPC status, so it survives a hop between services).
//! - [`grpc`]: the tower layers of the internal gRPC APIs: [`grpc::layers`], the stack every
//!   gRPC router wears (a span per call, call metrics, a panic catch); servers admit only
//!   service tokens of the right type and scope; clients attach a fresh token, the trace
//!   context and a deadline.
//! - [`jwt`]: the claim types of the three token kinds (user, service, meeting). AC signs them,
//!   GC and MC verify them; this crate never signs.
//! - [`jwks`]: the verifier every service uses: it fetches AC's JWKS, caches it, and checks
//!   signature, algorithm, expiry, issuer, audience and token type.
//! - [`service_token`]: the OAuth2 client-credentials client a service uses to call another.
//! - [`meeting_code`], [`display_name`] and [`settings`]: the shared vocabulary of meetings.
//! - `migrations` (feature `db`): waiting for a migration job instead of migrating at start-up;
//!   the crate's only PostgreSQL code, and it only reads which migrations are applied.
//! - [`json`]: refuses a JSON array where an object is expected.
//! - `openapi` (feature `openapi`, AC and GC): the schemas of the shared types and what AC's and
//!   GC's OpenAPI documents share (the answers of the common middleware stack).
//! - [`cli`]: how every binary starts (its shared commands, the default `serve`, the order of
//!   configuration, telemetry and runtime); [`healthcheck`]: the probe behind the
//!   `healthcheck` command (no shell in the images).
//! - [`telemetry`] and [`metrics`]: logs, traces and the Prometheus recorder.
//! - [`proto`]: the generated gRPC types of `proto/`.

pub mod auth;
pub mod backoff;
pub mod cli;
#[cfg(feature = "db")]
pub mod db;
pub mod display_name;
pub mod envelope;
pub mod error;
pub mod grpc;
pub mod healthcheck;
pub mod http;
pub mod json;
pub mod jwks;
pub mod jwt;
pub mod meeting_code;
pub mod metrics;
#[cfg(feature = "db")]
pub mod migrations;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod outage;
pub mod proto;
pub mod service_token;
pub mod settings;
pub mod shell;
pub mod telemetry;

/// Makes `ring` the process's rustls provider (the HTTP client, and TLS to PostgreSQL and
/// Redis: `sslmode=require`, `rediss://`). Installing twice is harmless, so every constructor
/// may call it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the HTTP client services use to talk to each other (with [`install_crypto_provider`]).
pub fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
}
