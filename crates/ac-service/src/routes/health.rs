//! Liveness (`common::http::health`, the same in every service), readiness and Prometheus
//! metrics, served on the HTTP listener and on the ops listener.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::error::ErrorEnvelope;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AcError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(common::http::health::live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// `{"status": "ready", "kid": ...}`.
#[derive(Serialize, ToSchema)]
pub(super) struct Ready {
    #[schema(schema_with = ready_status)]
    status: &'static str,
    /// The key this replica signs with.
    kid: String,
}

fn ready_status() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum(["ready"])
}

/// Readiness probe.
///
/// Ready when the replica is not stopping, PostgreSQL answers and an active signing key is
/// loaded.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Ready,
         example = json!({"status": "ready", "kid": "k20261201-Xb3kQ9mN2pLw"})),
        (status = 503, description = "Stopping, or PostgreSQL does not answer", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::Unavailable(anyhow::anyhow!("example"))))),
    ),
)]
pub(super) async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, AcError> {
    if !state.readiness.is_ready() {
        return Err(AcError::Unavailable(anyhow::anyhow!("stopping")));
    }
    crate::db::ping(&state.pool)
        .await
        .map_err(|e| AcError::Unavailable(e.into()))?;
    let kid = state.keys.active().kid.clone();
    Ok(Json(Ready {
        status: "ready",
        kid,
    }))
}

/// Prometheus metrics.
///
/// The Prometheus text format; the catalog is `docs/observability/metrics/ac-service.md`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String,
         example = "# TYPE ac_http_requests_total counter\nac_http_requests_total{method=\"GET\",route=\"/health/live\",status=\"200\"} 3\n"),
    ),
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.run_upkeep();
    common::http::metrics_response(&state.metrics).into_response()
}
