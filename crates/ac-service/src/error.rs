//! AC's one error type. Every handler returns `Result<_, AcError>`; the conversion to a response
//! is the single place that decides status codes, and it answers internal failures with a
//! generic message while logging their cause chain.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use common::error::{ApiError, ErrorCode, ServiceError};

use crate::domain::password::HashError;
use crate::domain::validation::ValidationError;

/// What a caller turned away by a full [`Hasher`](crate::domain::password::Hasher) is told to
/// wait: slots free up within tens of milliseconds, so a second is plenty.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AcError {
    /// The request is malformed or a field is out of bounds.
    #[error("bad request: {0}")]
    BadRequest(Cow<'static, str>),

    /// Wrong e-mail or wrong password; the two are deliberately indistinguishable.
    #[error("invalid e-mail or password")]
    InvalidLogin,

    /// Wrong, unknown or inactive OAuth client.
    #[error("invalid client credentials")]
    InvalidClient,

    /// No bearer token, or one that does not verify as the kind this route expects.
    #[error("missing or invalid bearer token")]
    Unauthorized,

    /// A valid caller that may not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),

    #[error("not found")]
    NotFound,

    #[error("conflict: {0}")]
    Conflict(&'static str),

    #[error("rate limited for {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },

    /// A dependency (the database) is down; answered with 503.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),

    /// Every hashing slot stayed taken; answered with 503 and `Retry-After`.
    #[error("too busy to hash, retry in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },

    /// An error already shaped for the client (e.g. a body that failed to parse).
    #[error(transparent)]
    Api(#[from] ApiError),

    #[error("database error")]
    Database(#[from] sqlx::Error),

    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<ValidationError> for AcError {
    fn from(error: ValidationError) -> Self {
        AcError::BadRequest(error.to_string().into())
    }
}

impl From<HashError> for AcError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => AcError::Busy {
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            },
            HashError::Failed(error) => AcError::Internal(error),
        }
    }
}

impl ServiceError for AcError {
    fn api_error(&self) -> ApiError {
        match self {
            AcError::BadRequest(message) => ApiError::bad_request(message.clone()),
            AcError::InvalidLogin => {
                ApiError::new(ErrorCode::Unauthorized, "invalid e-mail or password")
            }
            AcError::InvalidClient => ApiError::new(
                ErrorCode::Unauthorized,
                "invalid_client: client authentication failed",
            ),
            AcError::Unauthorized => ApiError::unauthorized(),
            AcError::Forbidden(message) => ApiError::forbidden(*message),
            AcError::NotFound => ApiError::not_found(),
            AcError::Conflict(message) => ApiError::conflict(*message),
            AcError::RateLimited { retry_after_secs } => ApiError::rate_limited(*retry_after_secs),
            // Out of connections, or PostgreSQL down, hung or restarting: the request may
            // succeed when retried.
            AcError::Unavailable(_) => ApiError::unavailable(),
            AcError::Database(e) if common::db::is_unavailable(e) => ApiError::unavailable(),
            AcError::Busy { retry_after_secs } => ApiError {
                retry_after_secs: Some(*retry_after_secs),
                ..ApiError::unavailable()
            },
            AcError::Api(error) => error.clone(),
            AcError::Database(_) | AcError::Internal(_) => ApiError::internal(),
        }
    }
}

impl IntoResponse for AcError {
    fn into_response(self) -> Response {
        if let AcError::Busy { .. } = self {
            // Counted, and answered without the warning `error_response` gives a 503: under a
            // flood this fires for every request.
            crate::metrics::hash_busy();
            return self.api_error().into_response();
        }
        common::error::error_response(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn internal_errors_answer_generically() {
        let response = AcError::Internal(anyhow::anyhow!("secret detail")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let error = AcError::Database(sqlx::Error::Decode("disk on fire".into())).api_error();
        assert_eq!(error.message, "internal error");
        let error = AcError::Database(sqlx::Error::PoolTimedOut).api_error();
        assert_eq!(error.code, ErrorCode::ServiceUnavailable);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = AcError::Database(sqlx::Error::Io(refused)).api_error();
        assert_eq!(error.code, ErrorCode::ServiceUnavailable);
    }

    #[test]
    fn a_full_hasher_answers_503_with_retry_after() {
        let response = AcError::from(HashError::Busy).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
    }

    #[test]
    fn each_variant_maps_to_its_status() {
        let cases = [
            (AcError::BadRequest("x".into()), StatusCode::BAD_REQUEST),
            (AcError::InvalidLogin, StatusCode::UNAUTHORIZED),
            (AcError::InvalidClient, StatusCode::UNAUTHORIZED),
            (AcError::Unauthorized, StatusCode::UNAUTHORIZED),
            (AcError::Forbidden("no"), StatusCode::FORBIDDEN),
            (AcError::NotFound, StatusCode::NOT_FOUND),
            (AcError::Conflict("dup"), StatusCode::CONFLICT),
            (
                AcError::RateLimited {
                    retry_after_secs: 3,
                },
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                AcError::Unavailable(anyhow::anyhow!("db")),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                AcError::Busy {
                    retry_after_secs: 1,
                },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.into_response().status(), status);
        }
    }
}
