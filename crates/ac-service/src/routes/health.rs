//! Liveness (`common::http::health`, the same in every service), readiness and Prometheus
//! metrics, served on the HTTP listener and on the ops listener.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::error::ErrorEnvelope;
use common::shell::Readiness;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::error::AcError;
use crate::keys::KeyStore;
use crate::state::AppState;

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
pub(super) async fn ready(
    State(readiness): State<Readiness>,
    State(pool): State<PgPool>,
    State(keys): State<KeyStore>,
) -> Result<Json<Ready>, AcError> {
    if !readiness.is_ready() {
        return Err(AcError::Unavailable(anyhow::anyhow!("stopping")));
    }
    common::db::within(common::db::PING_DEADLINE, crate::db::ping(&pool))
        .await
        .map_err(|e| AcError::Unavailable(e.into()))?;
    let kid = keys.active().kid.clone();
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
pub(super) async fn metrics(State(metrics): State<PrometheusHandle>) -> Response {
    metrics.run_upkeep();
    common::http::metrics_response(&metrics).into_response()
}
