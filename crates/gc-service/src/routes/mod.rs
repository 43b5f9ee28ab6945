//! GC's HTTP surface: the public meetings API, health probes and metrics.
//!
//! Every answer that is not a success is the envelope of DESIGN §7, including unknown routes
//! (404), wrong methods (405), oversized bodies and panics.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use common::error::ApiError;
use common::http::MAX_JSON_BODY_BYTES;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::{require_meeting_creator, require_user_auth};
use crate::metrics::record_create_outcome;
use crate::startup::AppState;

pub mod health;
pub mod meeting_object;
pub mod meetings;

pub fn router(state: AppState) -> Router {
    // Layers run outside-in in the reverse order of these calls: outcome metrics and span,
    // then authentication, then the role check, then the handler (which reads the body).
    let create = post(meetings::create_meeting)
        // Innermost, so a panic or a timeout is still a counted create failure.
        .route_layer(CatchPanicLayer::custom(panic_response))
        .route_layer(from_fn(|req, next| {
            common::http::enforce_timeout(common::http::REQUEST_TIMEOUT, req, next)
        }))
        .route_layer(from_fn(require_meeting_creator))
        .route_layer(from_fn_with_state(state.clone(), require_user_auth))
        .route_layer(from_fn(record_create_outcome));

    Router::new()
        // Both spellings, and never a redirect: a redirected POST loses its body in many clients.
        .route("/api/v1/meetings", create.clone())
        .route("/api/v1/meetings/", create)
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(common::http::not_found)
        .method_not_allowed_fallback(common::http::method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(|req, next| {
            common::http::track_metrics("gc", req, next)
        }))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .with_state(state)
}

/// A panic is a bug: log it and answer the generic 500, inside the metrics layers so the
/// failure is counted.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("handler panicked");
    ApiError::internal().into_response()
}
