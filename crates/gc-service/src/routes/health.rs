//! `GET /health/live`, `GET /health/ready` and `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use common::error::ApiError;
use serde_json::json;

use crate::startup::AppState;

/// The process is up and serving HTTP.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to serve creates: not stopping, PostgreSQL answers and AC's signing keys are known.
/// Not ready is a 503 envelope; the failing dependency is logged, not shown.
#[tracing::instrument(name = "gc.health.ready", skip_all)]
pub async fn ready(State(state): State<AppState>) -> Response {
    if !state.readiness.is_ready() {
        return ApiError::unavailable().into_response();
    }
    if let Err(error) = crate::db::ping(&state.pool).await {
        tracing::warn!(%error, "not ready: database unreachable");
        return ApiError::unavailable().into_response();
    }
    if !state.verifier.ensure_keys().await {
        tracing::warn!("not ready: no token signing keys from AC");
        return ApiError::unavailable().into_response();
    }
    Json(json!({ "status": "ready" })).into_response()
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    common::http::metrics_response(&state.metrics)
}
