//! AC's HTTP API: one module per resource, each with its `router()`, handlers and
//! request/response types. Every failure, including unknown routes, wrong methods, oversized
//! and malformed bodies and panics, answers with the shared error envelope.

mod admin_clients;
mod admin_orgs;
mod admin_users;
mod health;
mod jwks;
mod meeting_token;
mod service_token;
mod user_token;

use std::any::Any;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use common::error::ApiError;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use crate::error::AcError;
use crate::startup::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(jwks::router())
        .merge(user_token::router())
        .merge(service_token::router())
        .merge(meeting_token::router())
        .merge(admin_orgs::router())
        .merge(admin_users::router())
        .merge(admin_clients::router())
        .merge(health::router())
        .fallback(common::http::not_found)
        .method_not_allowed_fallback(common::http::method_not_allowed)
        // Timeouts and panics become 503/500 inside the metrics layer, so both are counted.
        .layer(axum::middleware::from_fn(|req, next| {
            common::http::enforce_timeout(common::http::REQUEST_TIMEOUT, req, next)
        }))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(|req, next| {
            common::http::track_metrics("ac", req, next)
        }))
        .layer(DefaultBodyLimit::max(common::http::MAX_JSON_BODY_BYTES))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .with_state(state)
}

/// One span per request, joined to the caller's trace when it sent W3C trace context. The raw
/// path is not recorded: it may carry ids, and the route template is enough.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let span = tracing::info_span!("ac.http", method = %request.method(), route);
    common::telemetry::adopt_trace_context(&span, request.headers());
    span
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal().into_response()
}

/// Parses an id from the path. A malformed id names nothing, so it is a 404 like an unknown one.
fn parse_id(raw: &str) -> Result<Uuid, AcError> {
    Uuid::parse_str(raw).map_err(|_| AcError::NotFound)
}
