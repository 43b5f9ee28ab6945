//! MC's HTTP routes, inside the common middleware stack (`common::http::layers`).

mod health;

use axum::Router;
use axum::routing::get;
use common::http::layers::{self, ServiceLayers};

use crate::state::AppState;

/// MC's routes plus `extra` (tests add routes that panic or stall), inside the common stack.
pub fn router_with(state: AppState, layers: ServiceLayers, extra: Router<AppState>) -> Router {
    let routes = Router::new()
        .merge(health::router())
        .route("/ws/v1/meetings/{code}", get(crate::signaling::upgrade))
        .merge(extra)
        .with_state(state);
    layers::apply(routes, layers)
}

/// The ops listener's router (`common::shell::Shell::listen_ops`): the health probes and
/// `/metrics` of [`health::router`] alone, inside the same middleware stack.
pub fn ops_router(state: AppState, layers: ServiceLayers) -> Router {
    layers::apply(health::router().with_state(state), layers)
}
