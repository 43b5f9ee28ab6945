//! Liveness (`common::http::health`, the same in every service), readiness and metrics, served
//! on the HTTP listener and on the ops listener.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::error::ApiError;
use common::jwks::JwksVerifier;
use common::shell::Readiness;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::room::RedisPool;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(common::http::health::live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// Ready when MC is not stopping, Redis answers PING and AC's signing keys are known.
pub async fn ready(
    State(readiness): State<Readiness>,
    State(redis): State<RedisPool>,
    State(verifier): State<JwksVerifier>,
) -> Response {
    if !readiness.is_ready() {
        return ApiError::unavailable().into_response();
    }
    let redis_ok = tokio::time::timeout(Duration::from_secs(2), ping(&redis))
        .await
        .unwrap_or(false);
    let keys_ok = verifier.ensure_keys().await;
    if redis_ok && keys_ok {
        StatusCode::OK.into_response()
    } else {
        tracing::warn!(redis_ok, keys_ok, "not ready");
        ApiError::unavailable().into_response()
    }
}

async fn ping(redis: &RedisPool) -> bool {
    let started = Instant::now();
    let pong: Result<String, _> = redis.query(&deadpool_redis::redis::cmd("PING")).await;
    metrics::histogram!("mc_redis_command_duration_seconds", "command" => "ping")
        .record(started.elapsed().as_secs_f64());
    pong.is_ok()
}

pub async fn metrics(State(metrics): State<PrometheusHandle>) -> Response {
    common::http::metrics_response(&metrics)
}
