//! The error envelope every Convene service answers with, and the shared error codes.
//!
//! Every error body, on every route of every service, is
//! `{"error": {"code": "UPPER_SNAKE", "message": "human sentence"}}`. A code maps to one HTTP
//! status and one gRPC code, so the same failure reads the same on both transports.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The shared error codes (DESIGN §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    MeetingFull,
    OrgMeetingLimitReached,
    PayloadTooLarge,
    UnsupportedMediaType,
    UriTooLong,
    RequestHeadersTooLarge,
    RateLimited,
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::MeetingFull => "MEETING_FULL",
            ErrorCode::OrgMeetingLimitReached => "ORG_MEETING_LIMIT_REACHED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::UriTooLong => "URI_TOO_LONG",
            ErrorCode::RequestHeadersTooLarge => "REQUEST_HEADERS_TOO_LARGE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::UnsupportedMediaType => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::OrgMeetingLimitReached => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict | ErrorCode::MeetingFull => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::RequestHeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UriTooLong
            | ErrorCode::RequestHeadersTooLarge
            | ErrorCode::MethodNotAllowed => tonic::Code::InvalidArgument,
            ErrorCode::Unauthorized => tonic::Code::Unauthenticated,
            ErrorCode::Forbidden => tonic::Code::PermissionDenied,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::Conflict => tonic::Code::AlreadyExists,
            ErrorCode::MeetingFull | ErrorCode::OrgMeetingLimitReached => {
                tonic::Code::FailedPrecondition
            }
            ErrorCode::RateLimited => tonic::Code::ResourceExhausted,
            ErrorCode::ServiceUnavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }
}

/// The JSON body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// An error ready to go to a client: a code, a message safe to show, and the headers some
/// codes need (`WWW-Authenticate` on 401, `Retry-After` on 429).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "a valid bearer token is required")
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "the resource does not exist")
    }

    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            code: ErrorCode::RateLimited,
            message: "too many requests, retry later".into(),
            retry_after_secs: Some(retry_after_secs.max(1)),
        }
    }

    /// A generic 500; the cause belongs in the log, never in the body.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// A generic 503.
    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::ServiceUnavailable,
            "service temporarily unavailable",
        )
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code.as_str().to_owned(),
                message: self.message.to_string(),
            },
        }
    }

    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.code.grpc_code(), self.message.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.http_status();
        let mut response = (status, axum::Json(self.envelope())).into_response();
        // Middleware (metrics, access logs) reads the code from here instead of the body.
        response.extensions_mut().insert(self.code);
        let headers = response.headers_mut();
        if self.code == ErrorCode::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"convene\""),
            );
        }
        if let Some(secs) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A service's own error type: each failure knows what the client is told. Implementing it is
/// all a service does; [`error_response`] (HTTP) logs and renders every service's errors the
/// same way.
pub trait ServiceError: std::error::Error {
    fn api_error(&self) -> ApiError;
}

/// The HTTP response for a service error. Failures on our side (5xx) are logged here, once,
/// with their cause chain; the client gets the generic message of [`ApiError::internal`] or
/// [`ApiError::unavailable`].
pub fn error_response(error: &dyn ServiceError) -> Response {
    let api_error = error.api_error();
    let status = api_error.code.http_status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %error, cause = %cause_chain(error), code = api_error.code.as_str(), "request failed");
    } else if status.is_server_error() {
        tracing::error!(error = %error, cause = %cause_chain(error), code = api_error.code.as_str(), "request failed");
    }
    api_error.into_response()
}

/// The sources of an error, `outer: inner: innermost`, for logs.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
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
    use super::*;
    use http_body_util_shim::body_json;

    mod http_body_util_shim {
        use axum::body::to_bytes;
        use axum::response::Response;

        pub async fn body_json(response: Response) -> serde_json::Value {
            let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
            serde_json::from_slice(&bytes).unwrap()
        }
    }

    #[tokio::test]
    async fn errors_render_the_envelope_with_their_status() {
        let response =
            ApiError::new(ErrorCode::OrgMeetingLimitReached, "limit reached").into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.extensions().get::<ErrorCode>(),
            Some(&ErrorCode::OrgMeetingLimitReached)
        );
        let body = body_json(response).await;
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "ORG_MEETING_LIMIT_REACHED", "message": "limit reached"}})
        );
    }

    #[tokio::test]
    async fn unauthorized_carries_www_authenticate_and_rate_limited_carries_retry_after() {
        let response = ApiError::unauthorized().into_response();
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        let response = ApiError::rate_limited(42).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }

    #[test]
    fn every_code_maps_to_an_error_status_on_both_transports() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Conflict,
            ErrorCode::MeetingFull,
            ErrorCode::OrgMeetingLimitReached,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::UriTooLong,
            ErrorCode::RequestHeadersTooLarge,
            ErrorCode::RateLimited,
            ErrorCode::ServiceUnavailable,
            ErrorCode::Internal,
        ] {
            assert!(code.http_status().is_client_error() || code.http_status().is_server_error());
            assert_ne!(code.grpc_code(), tonic::Code::Ok);
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
            );
        }
    }
}
