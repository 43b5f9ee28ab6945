//! `GET /.well-known/jwks.json`: the public keys GC and MC verify tokens with.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::error::AcError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// The pending next key (if a rotation is under way), the signing key and every retired key
/// still within its publication period. Clients may cache the set for a minute; a verifier
/// meeting an unknown `kid` refetches anyway.
#[tracing::instrument(skip_all, name = "ac.jwks")]
async fn jwks(State(state): State<AppState>) -> Result<Response, AcError> {
    let jwks = state
        .keys
        .published_jwks()
        .await
        .map_err(|e| AcError::Unavailable(e.into()))?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(jwks.as_ref().clone()),
    )
        .into_response())
}
