//! AC's HTTP API: one module per resource, each with its `router()`, handlers and
//! request/response types. Every failure, including unknown routes, wrong methods, oversized
//! and malformed bodies and panics, answers with the shared error envelope.
//!
//! A new endpoint: a handler in the file of its resource (or a new file with its own
//! `router()` merged below), callers authenticated by the extractors of `crate::auth`.

mod admin_clients;
mod admin_orgs;
mod admin_users;
mod guest_token;
mod health;
mod jwks;
mod meeting_token;
pub mod openapi;
mod service_token;
mod user_token;

use axum::Router;
use axum::routing::get;
use common::http::layers::{self, ServiceLayers};
use uuid::Uuid;

use crate::error::AcError;
use crate::state::AppState;

/// AC's routes plus `extra` (tests add routes that panic or stall), inside the common
/// middleware stack (`common::http::layers`).
pub fn router_with(state: AppState, layers: ServiceLayers, extra: Router<AppState>) -> Router {
    let routes = Router::new()
        .merge(jwks::router())
        .merge(user_token::router(&state.browser_origins))
        .merge(service_token::router())
        .merge(guest_token::router())
        .merge(meeting_token::router())
        .merge(admin_orgs::router())
        .merge(admin_users::router())
        .merge(admin_clients::router())
        .merge(health::router())
        .route("/api/v1/openapi.json", get(openapi::openapi_document))
        .merge(extra)
        .with_state(state);
    layers::apply(routes, layers)
}

/// The ops listener's router (`common::shell::Shell::listen_ops`): the health probes and
/// `/metrics` of [`health::router`] alone, inside the same middleware stack.
pub fn ops_router(state: AppState, layers: ServiceLayers) -> Router {
    layers::apply(health::router().with_state(state), layers)
}

/// Parses an id from the path. A malformed id names nothing, so it is a 404 like an unknown one.
fn parse_id(raw: &str) -> Result<Uuid, AcError> {
    Uuid::parse_str(raw).map_err(|_| AcError::NotFound)
}
