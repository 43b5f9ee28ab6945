//! What MC's handlers can reach: one [`AppState`], built by `startup`, and the parts of it a
//! handler takes by type (axum's `FromRef`: `State<Arc<Signaling>>`, `State<Readiness>`, …).
//! Neither `routes` nor `signaling` imports `startup`.

use std::sync::Arc;

use axum::extract::FromRef;
use common::jwks::JwksVerifier;
use common::shell::Readiness;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::room::{RedisPool, RoomStore};
use crate::signaling::Signaling;

/// Everything a handler of MC's routers can take.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub redis: RedisPool,
    pub store: RoomStore,
    pub verifier: JwksVerifier,
    pub metrics: PrometheusHandle,
    pub readiness: Readiness,
    pub signaling: Arc<Signaling>,
}
