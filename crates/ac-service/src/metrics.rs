//! AC's own Prometheus metrics. Every label takes values from a fixed set, so no input can
//! create new series.

use common::jwt::TokenType;

use crate::keys::rotation::RotationTrigger;

/// Why a sign-in failed; the `reason` label of `ac_login_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown e-mail or wrong password (not told apart, even here).
    InvalidCredentials,
    /// Right password, but the user or their org is deactivated.
    Inactive,
}

impl LoginFailure {
    fn as_str(self) -> &'static str {
        match self {
            LoginFailure::InvalidCredentials => "invalid_credentials",
            LoginFailure::Inactive => "inactive",
        }
    }
}

/// Creates every counter at 0 for each of its label values, at start-up: a rate over a series
/// that does not exist yet is no rate at all, so alerts and dashboards would see nothing until
/// the first failure. The catalog (docs/observability/metrics/ac-service.md) lists these.
pub fn register() {
    for token_type in [
        TokenType::User,
        TokenType::Service,
        TokenType::Meeting,
        TokenType::Guest,
    ] {
        metrics::counter!("ac_tokens_issued_total", "token_type" => token_type.as_str())
            .increment(0);
    }
    for reason in [LoginFailure::InvalidCredentials, LoginFailure::Inactive] {
        metrics::counter!("ac_login_failures_total", "reason" => reason.as_str()).increment(0);
    }
    metrics::counter!("ac_login_rate_limited_total").increment(0);
    for reason in [
        ClientAuthFailure::MissingCredentials,
        ClientAuthFailure::MalformedCredentials,
        ClientAuthFailure::InvalidCredentials,
        ClientAuthFailure::Inactive,
        ClientAuthFailure::RateLimited,
    ] {
        metrics::counter!("ac_client_auth_failures_total", "reason" => reason.as_str())
            .increment(0);
    }
    metrics::counter!("ac_hash_busy_total").increment(0);
    for trigger in [
        RotationTrigger::Scheduled,
        RotationTrigger::Manual,
        RotationTrigger::Emergency,
    ] {
        metrics::counter!("ac_key_rotations_total", "trigger" => trigger.as_str()).increment(0);
    }
}

pub fn token_issued(token_type: TokenType) {
    metrics::counter!("ac_tokens_issued_total", "token_type" => token_type.as_str()).increment(1);
}

pub fn login_failed(reason: LoginFailure) {
    metrics::counter!("ac_login_failures_total", "reason" => reason.as_str()).increment(1);
}

pub fn login_rate_limited() {
    metrics::counter!("ac_login_rate_limited_total").increment(1);
}

/// Why a client authentication (service-token request) failed; the `reason` label of
/// `ac_client_auth_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuthFailure {
    /// Neither HTTP Basic nor a client id and secret in the body.
    MissingCredentials,
    /// An `Authorization` header that is not valid Basic, both methods at once, or an
    /// oversized client id or secret.
    MalformedCredentials,
    /// Unknown client id or wrong secret (not told apart, even here).
    InvalidCredentials,
    /// Right secret, but the client is deactivated.
    Inactive,
    /// The client id or the address exceeded its failure budget (429).
    RateLimited,
}

impl ClientAuthFailure {
    fn as_str(self) -> &'static str {
        match self {
            ClientAuthFailure::MissingCredentials => "missing_credentials",
            ClientAuthFailure::MalformedCredentials => "malformed_credentials",
            ClientAuthFailure::InvalidCredentials => "invalid_credentials",
            ClientAuthFailure::Inactive => "inactive",
            ClientAuthFailure::RateLimited => "rate_limited",
        }
    }
}

pub fn client_auth_failed(reason: ClientAuthFailure) {
    metrics::counter!("ac_client_auth_failures_total", "reason" => reason.as_str()).increment(1);
}

/// A request answered 503 because no hashing slot became free in time.
pub fn hash_busy() {
    metrics::counter!("ac_hash_busy_total").increment(1);
}

/// The age of the key that signs now, and the rotation interval it is held to: an alert
/// compares them (`ACKeyRotationOverdue`).
pub fn signing_key_age(
    created_at: chrono::DateTime<chrono::Utc>,
    rotation_interval: std::time::Duration,
) {
    let age = (chrono::Utc::now() - created_at).num_milliseconds().max(0) as f64 / 1000.0;
    metrics::gauge!("ac_signing_key_age_seconds").set(age);
    metrics::gauge!("ac_signing_key_rotation_interval_seconds")
        .set(rotation_interval.as_secs_f64());
}

pub fn key_rotated(trigger: RotationTrigger) {
    metrics::counter!("ac_key_rotations_total", "trigger" => trigger.as_str()).increment(1);
}
