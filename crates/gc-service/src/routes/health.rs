//! `GET /health/live` (`common::http::health`, the same in every service), `GET /health/ready`
//! and `GET /metrics`, served on the HTTP listener and on the ops listener.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::error::{ApiError, ErrorEnvelope};
use common::jwks::JwksVerifier;
use common::shell::Readiness;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(common::http::health::live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// `{"status": "ready"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    #[schema(schema_with = ready_status)]
    status: &'static str,
}

fn ready_status() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum(["ready"])
}

/// Readiness probe.
///
/// Ready to serve creates: not stopping, PostgreSQL answers and AC's signing keys are known.
/// Meeting controllers do not count. Not ready is a 503 envelope; the failing dependency is
/// logged, not shown.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Ready, example = json!({"status": "ready"})),
        (status = 503, description = "Stopping, PostgreSQL does not answer, or no signing keys from AC",
         body = ErrorEnvelope, example = json!(super::openapi::unavailable())),
    ),
)]
#[tracing::instrument(name = "gc.health.ready", skip_all)]
pub async fn ready(
    State(readiness): State<Readiness>,
    State(pool): State<PgPool>,
    State(verifier): State<JwksVerifier>,
) -> Response {
    if !readiness.is_ready() {
        return ApiError::unavailable().into_response();
    }
    if let Err(error) = common::db::within(common::db::PING_DEADLINE, crate::db::ping(&pool)).await
    {
        tracing::warn!(%error, "not ready: database unreachable");
        return ApiError::unavailable().into_response();
    }
    if !verifier.ensure_keys().await {
        tracing::warn!("not ready: no token signing keys from AC");
        return ApiError::unavailable().into_response();
    }
    Json(Ready { status: "ready" }).into_response()
}

/// Prometheus metrics.
///
/// The Prometheus text format; the catalog is `docs/observability/metrics/gc-service.md`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String,
         example = "# TYPE gc_http_requests_total counter\ngc_http_requests_total{method=\"GET\",route=\"/health/live\",status=\"200\"} 3\n"),
    ),
)]
pub async fn metrics(State(metrics): State<PrometheusHandle>) -> Response {
    common::http::metrics_response(&metrics)
}
