//! axum pieces every Convene HTTP service uses: strict JSON bodies, the client's address and
//! bearer token, the `/metrics` response and the shutdown signal; [`layers`] is the middleware
//! stack every HTTP router wears, and [`health`] the liveness answer every service gives.

pub mod health;
pub mod layers;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};
use crate::json::JsonObject;

/// Largest JSON body any Convene endpoint accepts.
pub const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

/// A JSON body parsed strictly: the `Content-Type` must be `application/json`, the body must
/// parse, and (with `#[serde(deny_unknown_fields)]` on `T`) carry no unknown field. Every
/// failure is a 400 in the shared envelope, never axum's plain-text rejection.
pub struct StrictJson<T>(pub T);

impl<S, T> FromRequest<S> for StrictJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                payload_too_large()
            } else {
                ApiError::bad_request("request body could not be read")
            }
        })?;
        parse_json(&bytes).map(StrictJson)
    }
}

/// The answer to a JSON body sent without `Content-Type: application/json`. The status is 400,
/// not 415: DESIGN §3 lists a wrong content type among the 400s.
pub fn unsupported_media_type() -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        "expected content-type application/json",
    )
}

/// The answer to a body over [`MAX_JSON_BODY_BYTES`].
pub fn payload_too_large() -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
}

/// Parses a JSON body that must be an object (serde would otherwise take an array of a
/// struct's fields in order), describing what is wrong without echoing the body back.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice::<JsonObject<T>>(bytes)
        .map(|JsonObject(value)| value)
        .map_err(|error| {
            use serde_json::error::Category;
            let message = match error.classify() {
                Category::Data => format!("invalid request body: {error}"),
                Category::Syntax | Category::Eof | Category::Io => format!(
                    "malformed JSON at line {} column {}",
                    error.line(),
                    error.column()
                ),
            };
            ApiError::bad_request(message)
        })
}

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/json")
}

/// Renders the Prometheus text for `GET /metrics`.
pub fn metrics_response(handle: &metrics_exporter_prometheus::PrometheusHandle) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Resolves on SIGTERM or Ctrl-C: what a Kubernetes pod stop or a developer sends.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// The client's address: the socket peer, or — only when the service is told it sits behind a
/// proxy that appends `X-Forwarded-For` — the last address of that header, the one the proxy
/// itself saw. Earlier entries are whatever the client chose to send and are never trusted; an
/// unparsable last entry falls back to the peer.
pub fn client_ip(
    headers: &axum::http::HeaderMap,
    peer: Option<std::net::IpAddr>,
    trust_forwarded_for: bool,
) -> Option<std::net::IpAddr> {
    if trust_forwarded_for && let Some(forwarded) = last_forwarded_for(headers) {
        return Some(forwarded);
    }
    peer
}

fn last_forwarded_for(headers: &axum::http::HeaderMap) -> Option<std::net::IpAddr> {
    let last_header = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last_entry = last_header.to_str().ok()?.rsplit(',').next()?.trim();
    last_entry.parse::<std::net::IpAddr>().ok().or_else(|| {
        last_entry
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|addr| addr.ip())
    })
}

/// Extracts the bearer token of an `Authorization` header, if it is one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn parse_json_reports_unknown_fields_and_syntax_errors_as_bad_request() {
        let err = parse_json::<Body>(br#"{"name":"a","extra":1}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(err.message.contains("unknown field"));
        let err = parse_json::<Body>(b"{\"name\":").unwrap_err();
        assert!(err.message.starts_with("malformed JSON"));
        let err = parse_json::<Body>(br#"{"name":5}"#).unwrap_err();
        assert!(err.message.contains("invalid type"));
        let err = parse_json::<Body>(br#"["a"]"#).unwrap_err();
        assert!(err.message.contains("expected a JSON object"));
    }

    fn peer() -> Option<std::net::IpAddr> {
        Some("10.0.0.7".parse().unwrap())
    }

    #[test]
    fn the_socket_peer_is_used_unless_forwarded_for_is_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert_eq!(client_ip(&headers, peer(), false), peer());
        assert_eq!(
            client_ip(&headers, peer(), true),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn only_the_last_forwarded_for_entry_is_trusted() {
        let mut headers = HeaderMap::new();
        assert_eq!(client_ip(&headers, None, true), None);
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        assert_eq!(
            client_ip(&headers, None, true),
            Some("2.2.2.2".parse().unwrap())
        );
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6,  2001:db8::1 "),
        );
        assert_eq!(
            client_ip(&headers, peer(), true),
            Some("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn an_unparsable_forwarded_for_falls_back_to_the_peer() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_ip(&headers, peer(), true), peer());
        assert_eq!(client_ip(&headers, None, true), None);
        let mut with_port = HeaderMap::new();
        with_port.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.4:5555"),
        );
        assert_eq!(
            client_ip(&with_port, peer(), true),
            Some("198.51.100.4".parse().unwrap())
        );
    }

    #[test]
    fn bearer_token_accepts_only_the_bearer_scheme() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc.def"),
        );
        assert_eq!(bearer_token(&headers), Some("abc.def"));
    }
}
