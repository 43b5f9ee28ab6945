//! GC's HTTP surface: the public meetings API, health probes and metrics, inside the common
//! middleware stack (`common::http::layers`), so every answer that is not a success is the
//! envelope of DESIGN §7.
//!
//! A new endpoint: its request and response types and a thin handler in the file of its
//! resource (`meetings.rs` for create, `participation.rs` for the rest of a meeting's life),
//! the logic in a use case under `crate::use_cases`, and one `.route(...)` line below.

use axum::Router;
use axum::middleware::from_fn;
use axum::routing::{get, patch, post};
use common::http::layers::{self, ServiceLayers};

use crate::state::AppState;

pub mod health;
pub mod meeting_response;
pub mod meetings;
pub mod openapi;
pub mod participation;
pub mod web;
pub mod webhooks;

/// The router of [`router_with`] with nothing added.
pub fn router(state: AppState, layers: ServiceLayers) -> Router {
    router_with(state, layers, Router::new())
}

/// GC's routes plus `extra` (tests add routes that panic or stall), inside the common stack.
pub fn router_with(state: AppState, layers: ServiceLayers, extra: Router<AppState>) -> Router {
    // Counts every create attempt, including those refused before the handler runs.
    let create =
        post(meetings::create_meeting).route_layer(from_fn(crate::metrics::record_create_outcome));

    // The web client, only when GC_WEB_DIR is set: `/`, every `join_url` and their assets.
    let pages = if state.web.is_some() {
        Router::new()
            .route("/", get(web::page))
            .route("/m/{code}", get(web::page))
            .route("/assets/{name}", get(web::asset_file))
    } else {
        Router::new()
    };

    let routes = Router::new()
        // Both spellings, and never a redirect: a redirected POST loses its body in many clients.
        .route("/api/v1/meetings", create.clone())
        .route("/api/v1/meetings/", create)
        .route("/api/v1/meetings/history", get(participation::history))
        .route("/api/v1/meetings/{code}", get(participation::get_meeting))
        .route(
            "/api/v1/meetings/{code}/join",
            post(participation::join_meeting),
        )
        .route(
            "/api/v1/meetings/{code}/guest-join",
            post(participation::guest_join),
        )
        .route(
            "/api/v1/meetings/{code}/admit/{user_id}",
            post(participation::admit),
        )
        .route(
            "/api/v1/meetings/{code}/reject/{user_id}",
            post(participation::reject),
        )
        .route(
            "/api/v1/meetings/{code}/remove/{user_id}",
            post(participation::remove),
        )
        .route(
            "/api/v1/meetings/{code}/host/{user_id}",
            post(participation::hand_over),
        )
        .route(
            "/api/v1/meetings/{code}/admit-all",
            post(participation::admit_all),
        )
        .route(
            "/api/v1/meetings/{code}/leave",
            post(participation::leave_meeting),
        )
        .route(
            "/api/v1/meetings/{code}/end",
            post(participation::end_meeting),
        )
        .route(
            "/api/v1/meetings/{code}/config",
            patch(participation::update_config),
        )
        .route(
            "/api/v1/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/api/v1/webhooks/{webhook_id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/api/v1/webhooks/{webhook_id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/api/v1/webhooks/{webhook_id}/test", post(webhooks::test))
        .route(
            "/api/v1/webhooks/{webhook_id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
            post(webhooks::retry),
        )
        .merge(health::router())
        .route("/api/v1/openapi.json", get(openapi::openapi_document))
        .merge(pages)
        .merge(extra)
        .with_state(state);
    layers::apply(routes, layers)
}

/// The ops listener's router (`common::shell::Shell::listen_ops`): the health probes and
/// `/metrics` of [`health::router`] alone, inside the same middleware stack.
pub fn ops_router(state: AppState, layers: ServiceLayers) -> Router {
    layers::apply(health::router().with_state(state), layers)
}
