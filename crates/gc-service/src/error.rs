//! GC's one error type, returned by every use case whatever the transport that called it.
//!
//! Each variant maps to a shared [`ApiError`] (a `common` error code and a message safe to
//! show); `common::error::error_response` logs failures on our side with their cause chain
//! and answers them generically, so nothing from sqlx or the database reaches a client.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use common::error::{ApiError, ErrorCode, ServiceError};

use crate::domain::meeting::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Validation(#[from] ValidationError),

    /// Refusals already shaped for the client (a bad bearer token, a body that did not parse).
    #[error(transparent)]
    Api(#[from] ApiError),

    #[error("{0}")]
    Forbidden(Cow<'static, str>),

    /// Unknown, ended, or not visible to the caller: all answer the same 404, so codes
    /// cannot be probed.
    #[error("meeting not found")]
    MeetingNotFound,

    /// A host-only action by someone else who may see the meeting.
    #[error("only the host may do this")]
    NotHost,

    #[error("no meeting controller can take the meeting")]
    NoControllerAvailable,

    /// A peer (AC, a meeting controller) could not be reached or refused GC.
    #[error("{what}")]
    Unavailable {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("the organization has reached its concurrent meeting limit")]
    OrgMeetingLimitReached,

    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,

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

impl Error {
    pub fn unavailable(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Unavailable {
            what,
            source: source.into(),
        }
    }
}

impl From<ring::error::Unspecified> for Error {
    fn from(_: ring::error::Unspecified) -> Self {
        Error::Random
    }
}

/// Where a failed request failed, attached to its response so that metrics can tell apart
/// failures that share a status (a 500 from the database, from code collisions, or a bug).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The client's request was refused (4xx).
    Refused,
    Database,
    CodeCollision,
    /// Any other failure on our side.
    Internal,
}

impl Error {
    pub fn failure(&self) -> Failure {
        match self {
            Error::Database(_) => Failure::Database,
            Error::CodeCollision(_) => Failure::CodeCollision,
            Error::Random
            | Error::Internal(_)
            | Error::NoControllerAvailable
            | Error::Unavailable { .. } => Failure::Internal,
            Error::Api(api) if api.code.http_status().is_server_error() => Failure::Internal,
            Error::Validation(_)
            | Error::Api(_)
            | Error::Forbidden(_)
            | Error::MeetingNotFound
            | Error::NotHost
            | Error::OrgMeetingLimitReached
            | Error::IdempotencyKeyReused => Failure::Refused,
        }
    }
}

impl ServiceError for Error {
    fn api_error(&self) -> ApiError {
        match self {
            Error::Validation(e) => ApiError::bad_request(e.to_string()),
            Error::Api(api) => api.clone(),
            Error::Forbidden(message) => ApiError::forbidden(message.clone()),
            Error::MeetingNotFound => ApiError::not_found(),
            Error::NotHost => ApiError::forbidden("only the meeting's host may do this"),
            Error::NoControllerAvailable => ApiError::new(
                ErrorCode::ServiceUnavailable,
                "no meeting controller is available, retry later",
            ),
            Error::Unavailable { .. } => ApiError::unavailable(),
            Error::OrgMeetingLimitReached => ApiError::new(
                ErrorCode::OrgMeetingLimitReached,
                "the organization has reached its concurrent meeting limit",
            ),
            Error::IdempotencyKeyReused => {
                ApiError::conflict("this Idempotency-Key was already used with a different request")
            }
            // Out of connections, or PostgreSQL down, hung or restarting: the request may
            // succeed when retried.
            Error::Database(e) if common::db::is_unavailable(e) => ApiError::unavailable(),
            Error::CodeCollision(_) | Error::Database(_) | Error::Random | Error::Internal(_) => {
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = common::error::error_response(&self);
        response.extensions_mut().insert(self.failure());
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn status_and_code(error: &Error) -> (StatusCode, &'static str) {
        let api = error.api_error();
        (api.code.http_status(), api.code.as_str())
    }

    #[test]
    fn each_failure_maps_to_its_status_and_code() {
        let cases = [
            (
                Error::Validation(ValidationError::MaxParticipantsTooSmall),
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                Failure::Refused,
            ),
            (
                Error::Api(ApiError::unauthorized()),
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                Failure::Refused,
            ),
            (
                Error::Forbidden(forbidden::MISSING_ROLE.into()),
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                Failure::Refused,
            ),
            (
                Error::OrgMeetingLimitReached,
                StatusCode::FORBIDDEN,
                "ORG_MEETING_LIMIT_REACHED",
                Failure::Refused,
            ),
            (
                Error::IdempotencyKeyReused,
                StatusCode::CONFLICT,
                "CONFLICT",
                Failure::Refused,
            ),
            (
                Error::CodeCollision(3),
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                Failure::CodeCollision,
            ),
            (
                Error::Database(sqlx::Error::RowNotFound),
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                Failure::Database,
            ),
            (
                Error::Database(sqlx::Error::PoolTimedOut),
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                Failure::Database,
            ),
            (
                Error::Api(ApiError::unavailable()),
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                Failure::Internal,
            ),
            (
                Error::Random,
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                Failure::Internal,
            ),
        ];
        for (error, status, code, failure) in cases {
            assert_eq!(error.failure(), failure, "{error:?}");
            assert_eq!(status_and_code(&error), (status, code));
        }
    }

    #[test]
    fn internal_failures_answer_with_a_generic_message() {
        let error = Error::Database(sqlx::Error::Decode("relation meetings is on fire".into()));
        assert_eq!(error.api_error().message, "internal error");
        assert!(
            !Error::CodeCollision(3)
                .api_error()
                .message
                .contains("collision")
        );
    }

    #[test]
    fn responses_carry_the_envelope_status_and_failure() {
        let response = Error::CodeCollision(3).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.extensions().get::<Failure>(),
            Some(&Failure::CodeCollision)
        );
    }
}
