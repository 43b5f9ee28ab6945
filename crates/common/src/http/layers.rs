//! The one middleware stack every Convene HTTP router wears, so that REST routes, health
//! probes, metrics and WebSocket upgrades of every service behave alike at the edges.
//!
//! From the outside in, a request meets:
//! 1. sensitive headers marked (`Authorization`, `Cookie`, ...), so no log or debug print shows them;
//! 2. a request id: the client's `x-request-id` when it is short and plain, else a fresh
//!    UUID, echoed on the response;
//! 3. a span per request named by its route template (`GET /api/v1/meetings/{code}`, never the
//!    raw path), joined to the caller's W3C trace;
//! 4. HTTP metrics by method, route template and status;
//! 5. a panic catch: a panicking handler answers the generic 500 envelope;
//! 6. a timeout: a request still unanswered after `request_timeout` gets a 503 envelope;
//! 7. checks of the request head: an overlong URI (414), too many or too large headers (431),
//!    and two `Authorization` or `Content-Type` headers (400), all with the envelope;
//! 8. the JSON body limit (413 envelope, from `StrictJson`);
//!
//! and unknown routes and methods answer 404 and 405 envelopes.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use tracing::field::Empty;

use crate::error::{ApiError, ErrorCode};
use crate::http::MAX_JSON_BODY_BYTES;

/// How long a request may take before it is answered 503. Generous: a create is milliseconds
/// and a sign-in tens of them; this only stops a stuck dependency from holding requests (and
/// their connections) forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest request target (path and query) accepted; longer ones get a 414 envelope.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request headers accepted; more get a 431 envelope.
pub const MAX_HEADERS: usize = 100;
/// Largest total size of the request headers (names and values) accepted; more get a 431
/// envelope. The listener's own buffer (`shell::ListenerLimits::max_head_bytes`) is larger, so
/// a head between the two still gets an envelope; beyond it hyper answers 431 with no body.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The `x-request-id` header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client-chosen request id kept; anything longer or unusual is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// What differs between services in the stack.
#[derive(Clone, Copy, Debug)]
pub struct ServiceLayers {
    /// The service's short name: metric prefix (`gc_http_requests_total`) and span field.
    pub service: &'static str,
    pub request_timeout: Duration,
}

impl ServiceLayers {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Wraps a service's whole router (state already applied) in the stack.
pub fn apply(router: Router, layers: ServiceLayers) -> Router {
    let ServiceLayers {
        service,
        request_timeout,
    } = layers;
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .layer(from_fn(check_request_head))
        .layer(from_fn(move |req, next| {
            enforce_timeout(request_timeout, req, next)
        }))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(move |req, next| track_metrics(service, req, next)))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |req: &Request| request_span(service, req))
                .on_request(())
                .on_failure(()),
        )
        .layer(from_fn(assign_request_id))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
        ]))
}

/// One span per request, joined to the caller's trace when it sent W3C trace context. The raw
/// path is not recorded: it may carry ids and codes, and the route template says enough.
fn request_span(service: &'static str, request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let method = method_label(request.method());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        service,
        method,
        route,
        request_id,
        status = Empty,
    );
    crate::telemetry::adopt_trace_context(&span, request.headers());
    span
}

/// Keeps a client's request id when it is 1–128 characters of `[A-Za-z0-9._:-]` (anything
/// else could forge log lines or bloat them), else assigns a fresh one; echoes it back.
async fn assign_request_id(mut req: Request, next: Next) -> Response {
    let kept = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| is_plain_request_id(v.as_bytes()))
        .cloned();
    let id = match kept {
        Some(id) => id,
        None => {
            let fresh = uuid::Uuid::new_v4().to_string();
            match HeaderValue::from_str(&fresh) {
                Ok(value) => value,
                Err(_) => return next.run(req).await,
            }
        }
    };
    req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    let mut response = next.run(req).await;
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}

fn is_plain_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Refuses request heads the services will not interpret: an overlong target, too many or
/// too large headers, and a second `Authorization` or `Content-Type` (a proxy and the service
/// could each read a different one).
async fn check_request_head(req: Request, next: Next) -> Response {
    if req.uri().to_string().len() > MAX_URI_BYTES {
        return uri_too_long().into_response();
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return headers_too_large().into_response();
    }
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if headers.get_all(&name).iter().nth(1).is_some() {
            return duplicate_header(&name).into_response();
        }
    }
    next.run(req).await
}

/// The answer to a request target over [`MAX_URI_BYTES`].
pub fn uri_too_long() -> ApiError {
    ApiError::new(ErrorCode::UriTooLong, "the request target is too long")
}

/// The answer to more than [`MAX_HEADERS`] headers or over [`MAX_HEADER_BYTES`] of them.
pub fn headers_too_large() -> ApiError {
    ApiError::new(
        ErrorCode::RequestHeadersTooLarge,
        "the request headers are too many or too large",
    )
}

/// The answer to a second `name` header (`Authorization` or `Content-Type`).
pub fn duplicate_header(name: &HeaderName) -> ApiError {
    ApiError::bad_request(format!("the {name} header must appear at most once"))
}

/// The answer to a request still unanswered after the request timeout.
pub fn timed_out() -> ApiError {
    ApiError::new(
        ErrorCode::ServiceUnavailable,
        "the request took too long, retry later",
    )
}

/// Middleware answering 503 `SERVICE_UNAVAILABLE` when the inner service takes longer than
/// `timeout`. The inner future is dropped: a database statement in flight is cancelled or
/// finishes on its own, so a client retrying a create should send an `Idempotency-Key`.
pub async fn enforce_timeout(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_secs = timeout.as_secs_f64(), "request timed out");
            timed_out().into_response()
        }
    }
}

/// A panic is a bug: log it and answer the generic 500 envelope.
fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal().into_response()
}

/// Fallback for routes that do not exist: the 404 envelope.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Fallback for a known route called with the wrong method: the 405 envelope.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

/// Records `{prefix}_http_requests_total` and `{prefix}_http_request_duration_seconds`,
/// labelled by method, route template and status. The route is axum's matched template
/// (`/api/v1/meetings/{code}`), never the raw path, so a scan of random URLs cannot blow up
/// the number of series.
async fn track_metrics(prefix: &'static str, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status();
    tracing::Span::current().record("status", status.as_u16());
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!(format!("{prefix}_http_requests_total"), &labels).increment(1);
    metrics::histogram!(format!("{prefix}_http_request_duration_seconds"), &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a metric label. Only the standard methods get their own series: a client can
/// send any token as a method, and each would otherwise become a new series.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        let routes = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(31)).await;
                    "done"
                }),
            )
            .route("/fast", get(|| async { "done" }))
            .route(
                "/panic",
                get(|| async {
                    #[allow(clippy::panic)]
                    if true {
                        panic!("a handler bug");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/echo",
                post(
                    |crate::http::StrictJson(v): crate::http::StrictJson<serde_json::Value>| async move {
                        axum::Json(v)
                    },
                ),
            );
        apply(routes, ServiceLayers::new("test"))
    }

    fn request(path: &str) -> Request<Body> {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    async fn code_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        body["error"]["code"].as_str().unwrap().to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_slower_than_the_timeout_gets_a_503_envelope() {
        let slow = app().oneshot(request("/slow")).await.unwrap();
        let fast = app().oneshot(request("/fast")).await.unwrap();

        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(fast.status(), StatusCode::OK);
        assert_eq!(code_of(slow).await, "SERVICE_UNAVAILABLE");
    }

    #[tokio::test]
    async fn a_panic_is_a_500_envelope() {
        let response = app().oneshot(request("/panic")).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(code_of(response).await, "INTERNAL");
    }

    #[tokio::test]
    async fn an_oversized_body_is_a_413_envelope() {
        let body = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_JSON_BODY_BYTES));
        let response = app()
            .oneshot(
                Request::post("/echo")
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(code_of(response).await, "PAYLOAD_TOO_LARGE");
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_envelopes() {
        let response = app().oneshot(request("/nope")).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(code_of(response).await, "NOT_FOUND");
        let response = app()
            .oneshot(Request::delete("/fast").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(code_of(response).await, "METHOD_NOT_ALLOWED");
    }

    #[tokio::test]
    async fn duplicate_authorization_or_content_type_headers_are_refused() {
        for name in ["authorization", "content-type"] {
            let response = app()
                .oneshot(
                    Request::post("/echo")
                        .header(name, "application/json")
                        .header(name, "application/json")
                        .body(Body::from("{}"))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
            assert_eq!(code_of(response).await, "BAD_REQUEST");
        }
    }

    #[tokio::test]
    async fn oversized_heads_get_414_and_431_envelopes() {
        let long = format!("/fast?{}", "q".repeat(MAX_URI_BYTES));
        let response = app().oneshot(request(&long)).await.unwrap();
        assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
        assert_eq!(code_of(response).await, "URI_TOO_LONG");

        let mut many = Request::get("/fast");
        for i in 0..=MAX_HEADERS {
            many = many.header(format!("x-h{i}"), "v");
        }
        let response = app()
            .oneshot(many.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(code_of(response).await, "REQUEST_HEADERS_TOO_LARGE");

        let big = Request::get("/fast")
            .header("x-big", "b".repeat(MAX_HEADER_BYTES))
            .body(Body::empty())
            .unwrap();
        let response = app().oneshot(big).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn plain_request_ids_are_kept_and_others_replaced() {
        let kept = app()
            .oneshot(
                Request::get("/fast")
                    .header("x-request-id", "abc-123")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(kept.headers()["x-request-id"], "abc-123");

        for bad in ["has space", "<script>", &"x".repeat(129)] {
            let response = app()
                .oneshot(
                    Request::get("/fast")
                        .header("x-request-id", bad)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let id = response.headers()["x-request-id"].to_str().unwrap();
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(id).is_ok());
        }
        let fresh = app().oneshot(request("/fast")).await.unwrap();
        assert!(fresh.headers().contains_key("x-request-id"));
    }

    #[test]
    fn nonstandard_methods_share_one_metric_label() {
        let custom = axum::http::Method::from_bytes(b"FOOBARBAZ").unwrap();
        assert_eq!(method_label(&custom), "OTHER");
        assert_eq!(method_label(&axum::http::Method::PATCH), "PATCH");
    }
}
