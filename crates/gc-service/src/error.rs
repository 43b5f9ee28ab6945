//! GC's one error type, and how each failure reads to a client, to the logs and to metrics.
//!
//! Every variant maps to a shared [`ApiError`] (the envelope of DESIGN §7). Internal failures
//! are logged here with their cause chain and answered with a generic message; nothing from
//! sqlx or the database ever reaches a response body.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use common::error::{ApiError, ErrorCode};

use crate::domain::meeting::ValidationError;
use crate::metrics::{ErrorTypeLabel, error_type};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Validation(#[from] ValidationError),

    #[error("missing or invalid bearer token")]
    Unauthorized,

    #[error("{0}")]
    Forbidden(Cow<'static, str>),

    #[error("the organization has reached its concurrent meeting limit")]
    OrgMeetingLimitReached,

    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,

    #[error("token signing keys are unavailable")]
    KeysUnavailable,

    #[error("no unique meeting code after {0} attempts")]
    CodeCollision(u32),

    #[error("database error")]
    Database(#[from] sqlx::Error),

    #[error("the system random number generator failed")]
    Random,

    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Messages of the 403s that are not the org limit.
pub mod forbidden {
    pub const MISSING_ROLE: &str = "creating meetings requires the role user, org_admin or admin";
    pub const ORG_NOT_ACTIVE: &str = "the organization does not exist or is not active";
    pub const USER_NOT_ACTIVE: &str = "the user account is not active";
}

impl From<ring::error::Unspecified> for Error {
    fn from(_: ring::error::Unspecified) -> Self {
        Error::Random
    }
}

impl Error {
    /// The `error_type` label of `gc_meetings_created_total` (DESIGN §8).
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Validation(_) | Error::IdempotencyKeyReused => error_type::BAD_REQUEST,
            Error::Unauthorized => error_type::UNAUTHORIZED,
            Error::Forbidden(_) | Error::OrgMeetingLimitReached => error_type::FORBIDDEN,
            Error::Database(_) => error_type::DB_ERROR,
            Error::CodeCollision(_) => error_type::CODE_COLLISION,
            Error::KeysUnavailable | Error::Random | Error::Internal(_) => error_type::INTERNAL,
        }
    }

    /// What the client sees.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Error::Validation(e) => ApiError::bad_request(e.to_string()),
            Error::Unauthorized => ApiError::unauthorized(),
            Error::Forbidden(message) => ApiError::forbidden(message.clone()),
            Error::OrgMeetingLimitReached => ApiError::new(
                ErrorCode::OrgMeetingLimitReached,
                "the organization has reached its concurrent meeting limit",
            ),
            Error::IdempotencyKeyReused => {
                ApiError::conflict("this Idempotency-Key was already used with a different request")
            }
            // Out of connections or keys: the request may succeed when retried.
            Error::KeysUnavailable | Error::Database(sqlx::Error::PoolTimedOut) => {
                ApiError::unavailable()
            }
            Error::CodeCollision(_) | Error::Database(_) | Error::Random | Error::Internal(_) => {
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let api_error = self.to_api_error();
        if api_error.code.http_status().is_server_error() {
            tracing::error!(error = %self, cause = %cause_chain(&self), "request failed");
        }
        let mut response = api_error.into_response();
        response
            .extensions_mut()
            .insert(ErrorTypeLabel(self.error_type()));
        response
    }
}

/// `outer: inner: innermost`, for logs.
fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut chain = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    chain.join(": ")
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::http::header::WWW_AUTHENTICATE;

    use super::*;

    fn status_and_code(error: Error) -> (StatusCode, &'static str) {
        let api = error.to_api_error();
        (api.code.http_status(), api.code.as_str())
    }

    #[test]
    fn each_failure_maps_to_its_status_code_and_metric_label() {
        let cases = [
            (
                Error::Validation(ValidationError::DisplayNameBlank),
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "bad_request",
            ),
            (
                Error::Unauthorized,
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "unauthorized",
            ),
            (
                Error::Forbidden(forbidden::MISSING_ROLE.into()),
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "forbidden",
            ),
            (
                Error::OrgMeetingLimitReached,
                StatusCode::FORBIDDEN,
                "ORG_MEETING_LIMIT_REACHED",
                "forbidden",
            ),
            (
                Error::IdempotencyKeyReused,
                StatusCode::CONFLICT,
                "CONFLICT",
                "bad_request",
            ),
            (
                Error::CodeCollision(3),
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "code_collision",
            ),
            (
                Error::Database(sqlx::Error::RowNotFound),
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "db_error",
            ),
            (
                Error::Database(sqlx::Error::PoolTimedOut),
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "db_error",
            ),
            (
                Error::KeysUnavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "internal",
            ),
            (
                Error::Random,
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "internal",
            ),
        ];
        for (error, status, code, label) in cases {
            assert_eq!(error.error_type(), label, "{error:?}");
            assert_eq!(status_and_code(error), (status, code));
        }
    }

    #[test]
    fn internal_failures_answer_with_a_generic_message() {
        let error = Error::Database(sqlx::Error::Protocol("relation meetings is on fire".into()));
        let api = error.to_api_error();
        assert_eq!(api.message, "internal error");
        let api = Error::CodeCollision(3).to_api_error();
        assert!(!api.message.contains("collision"));
    }

    #[test]
    fn responses_carry_the_envelope_the_metric_label_and_www_authenticate_on_401() {
        let response = Error::Unauthorized.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(WWW_AUTHENTICATE));
        assert_eq!(
            response.extensions().get::<ErrorTypeLabel>(),
            Some(&ErrorTypeLabel("unauthorized"))
        );
    }
}
