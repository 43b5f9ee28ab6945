//! Liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::AcError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// The process is up and serving HTTP; nothing else is checked, so a database outage does not
/// get every replica restarted.
async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

/// Ready when the replica is not stopping, PostgreSQL answers and an active signing key is
/// loaded.
async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AcError> {
    if !state.readiness.is_ready() {
        return Err(AcError::Unavailable(anyhow::anyhow!("stopping")));
    }
    sqlx::query("select 1")
        .execute(&state.pool)
        .await
        .map_err(|e| AcError::Unavailable(e.into()))?;
    let kid = state.keys.active().kid.clone();
    Ok(Json(json!({"status": "ready", "kid": kid})))
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.run_upkeep();
    common::http::metrics_response(&state.metrics).into_response()
}
