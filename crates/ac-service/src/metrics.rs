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

pub fn token_issued(token_type: TokenType) {
    metrics::counter!("ac_tokens_issued_total", "token_type" => token_type.as_str()).increment(1);
}

pub fn login_failed(reason: LoginFailure) {
    metrics::counter!("ac_login_failures_total", "reason" => reason.as_str()).increment(1);
}

pub fn login_rate_limited() {
    metrics::counter!("ac_login_rate_limited_total").increment(1);
}

pub fn client_auth_failed() {
    metrics::counter!("ac_client_auth_failures_total").increment(1);
}

pub fn key_rotated(trigger: RotationTrigger) {
    metrics::counter!("ac_key_rotations_total", "trigger" => trigger.as_str()).increment(1);
}
