//! The error answers of the OAuth2 token endpoint. Being an OAuth2 endpoint, it answers as RFC
//! 6749 §5.2 says, so that OAuth2 client libraries understand it (DESIGN §2), instead of with
//! the Convene envelope: `{"error": "<code>", "error_description": "<sentence>"}`.
//!
//! An [`AcError`] raised on the way (a body that does not parse, a rate limit, a database
//! failure) keeps its status, headers, logging and metrics, and only gets the OAuth body. The
//! codes: `invalid_request` (400, and 413 for an oversized body), `invalid_client` (401, with
//! `WWW-Authenticate: Basic`), `invalid_scope` and `unsupported_grant_type` (400), and for what
//! RFC 6749 §5.2 has no code for, the registered extension codes `slow_down` (429, with
//! `Retry-After`; RFC 8628 §3.5), `temporarily_unavailable` (503) and `server_error` (500).

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::error::ServiceError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AcError;

/// An error of the token endpoint.
#[derive(Debug)]
pub enum OAuthError {
    /// A parameter is missing, malformed or out of bounds.
    InvalidRequest(Cow<'static, str>),
    /// Unknown client, wrong or missing secret, or an authentication method AC does not take.
    InvalidClient,
    /// A requested scope is not granted to the client.
    InvalidScope,
    /// A grant type other than `client_credentials`.
    UnsupportedGrantType,
    /// Anything else AC may answer (a rate limit, no capacity, an internal failure).
    Service(AcError),
}

impl From<AcError> for OAuthError {
    fn from(error: AcError) -> Self {
        match error {
            AcError::BadRequest(message) => OAuthError::InvalidRequest(message),
            AcError::InvalidClient => OAuthError::InvalidClient,
            other => OAuthError::Service(other),
        }
    }
}

/// The `error` codes of the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = OAuthErrorCode)]
pub enum ErrorCode {
    /// 400 (413 for a body over 64 KiB): a parameter is missing, malformed or out of bounds,
    /// or two authentication methods were used.
    InvalidRequest,
    /// 401: unknown client, wrong secret, deactivated client, no credentials.
    InvalidClient,
    /// 400: a requested scope the client does not hold.
    InvalidScope,
    /// 400: a `grant_type` other than `client_credentials`.
    UnsupportedGrantType,
    /// 429: the client id or the address is over its failure budget (RFC 8628's code).
    SlowDown,
    /// 503: no capacity to check the secret in time.
    TemporarilyUnavailable,
    /// 500: anything else; the cause is only logged.
    ServerError,
}

/// An RFC 6749 section 5.2 error object.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OAuthErrorBody)]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// A sentence for people; never parse it.
    #[schema(value_type = String)]
    pub error_description: Cow<'static, str>,
}

impl OAuthError {
    /// The error object this error is answered with.
    pub fn body(&self) -> ErrorBody {
        let (error, error_description) = match self {
            OAuthError::InvalidRequest(description) => {
                (ErrorCode::InvalidRequest, description.clone())
            }
            OAuthError::InvalidClient => (
                ErrorCode::InvalidClient,
                "client authentication failed".into(),
            ),
            OAuthError::InvalidScope => (
                ErrorCode::InvalidScope,
                "a requested scope is not granted to this client".into(),
            ),
            OAuthError::UnsupportedGrantType => (
                ErrorCode::UnsupportedGrantType,
                "only client_credentials is supported".into(),
            ),
            OAuthError::Service(error) => {
                // The status of the envelope the error would have had.
                let api = error.api_error();
                let status = api.code.http_status();
                let code = match status {
                    StatusCode::TOO_MANY_REQUESTS => ErrorCode::SlowDown,
                    StatusCode::SERVICE_UNAVAILABLE => ErrorCode::TemporarilyUnavailable,
                    status if status.is_server_error() => ErrorCode::ServerError,
                    StatusCode::UNAUTHORIZED => ErrorCode::InvalidClient,
                    _ => ErrorCode::InvalidRequest,
                };
                let description: Cow<'static, str> = if status.is_server_error() {
                    "the request could not be served, retry later".into()
                } else {
                    match error {
                        AcError::Api(api) => api.message.clone(),
                        AcError::RateLimited { .. } => {
                            "too many failed attempts, retry later".into()
                        }
                        _ => "the request could not be served, retry later".into(),
                    }
                };
                (code, description)
            }
        };
        ErrorBody {
            error,
            error_description,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = match self {
            OAuthError::InvalidRequest(_)
            | OAuthError::InvalidScope
            | OAuthError::UnsupportedGrantType => StatusCode::BAD_REQUEST.into_response(),
            OAuthError::InvalidClient => {
                let mut response = StatusCode::UNAUTHORIZED.into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"convene\""),
                );
                response
            }
            // The envelope response: its status, headers, log line and metrics stay.
            OAuthError::Service(error) => error.into_response(),
        };
        match serde_json::to_vec(&body) {
            Ok(bytes) => {
                *response.body_mut() = Body::from(bytes);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            Err(_) => *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
        }
        response.headers_mut().remove(header::CONTENT_LENGTH);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn oauth_errors_have_their_status_code_and_headers() {
        let client = OAuthError::InvalidClient.into_response();
        assert_eq!(client.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            client.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"convene\""
        );
        assert_eq!(body_of(client).await["error"], "invalid_client");

        let limited = OAuthError::from(AcError::RateLimited {
            retry_after_secs: 7,
        })
        .into_response();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "7");
        assert_eq!(body_of(limited).await["error"], "slow_down");

        let internal =
            OAuthError::from(AcError::Internal(anyhow::anyhow!("secret detail"))).into_response();
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(internal).await;
        assert_eq!(body["error"], "server_error");
        assert!(!body.to_string().contains("secret detail"));

        let bad = OAuthError::from(AcError::BadRequest("client_id is malformed".into()));
        let bad = body_of(bad.into_response()).await;
        assert_eq!(bad["error"], "invalid_request");
        assert_eq!(bad["error_description"], "client_id is malformed");
    }
}
