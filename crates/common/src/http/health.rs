//! `GET /health/live`, answered alike by every service: the process is up and serves HTTP.
//! Readiness differs (each service checks its own dependencies) and stays with each service.

use axum::Json;
use serde::Serialize;

/// The body of `GET /health/live`: `{"status": "live"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Live {
    #[cfg_attr(feature = "openapi", schema(schema_with = live_status))]
    status: &'static str,
}

#[cfg(feature = "openapi")]
fn live_status() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::string_enum(["live"])
}

/// Liveness probe.
///
/// The process is up and serving HTTP. Nothing else is checked, so an outage of a dependency
/// (PostgreSQL, Redis, AC) does not get every replica restarted; `/health/ready` checks them.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Alive", body = Live, example = json!({"status": "live"}))),
))]
pub async fn live() -> Json<Live> {
    Json(Live { status: "live" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn live_answers_200_with_the_status_live() {
        let response = live().await.into_response();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"status": "live"})
        );
    }
}
