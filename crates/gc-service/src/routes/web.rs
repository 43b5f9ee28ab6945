//! The meeting page's routes, only when `GC_WEB_DIR` is set: `/`, every `join_url` and the
//! client's assets, served from memory by [`crate::web::WebClient`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use common::error::ApiError;
use sqlx::PgPool;

use crate::web::WebClient;

/// `GET /` and `GET /m/{code}`: the same page; it reads the path itself.
pub async fn page(
    State(web): State<Option<Arc<WebClient>>>,
    State(pool): State<PgPool>,
    headers: HeaderMap,
) -> Response {
    match web {
        Some(web) => web.page(&pool, &headers).await,
        None => ApiError::not_found().into_response(),
    }
}

/// `GET /assets/{name}`: a script or style sheet of the client.
pub async fn asset_file(
    State(web): State<Option<Arc<WebClient>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    web.and_then(|web| web.asset(&name, &headers))
        .unwrap_or_else(|| ApiError::not_found().into_response())
}
