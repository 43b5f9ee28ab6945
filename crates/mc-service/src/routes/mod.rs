//! MC's HTTP routes.

mod health;

use axum::Router;
use axum::routing::get;

use crate::startup::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(common::http::not_found)
        .method_not_allowed_fallback(common::http::method_not_allowed)
        .layer(axum::middleware::from_fn(|req, next| {
            common::http::track_metrics("mc", req, next)
        }))
        .with_state(state)
}
