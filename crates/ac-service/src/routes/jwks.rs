//! `GET /.well-known/jwks.json`: the public keys GC and MC verify tokens with.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::error::ErrorEnvelope;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::error::AcError;
use crate::keys::KeyStore;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// The public keys.
///
/// The pending next key (if a rotation is under way), the signing key and every retired key
/// still within its publication period, newest first. Clients may cache the set for a minute;
/// a verifier meeting an unknown `kid` refetches anyway.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    security(()),
    responses(
        (status = 200, description = "The key set",
         headers(("Cache-Control" = String, description = "`public, max-age=60`")),
         body = JwkSet,
         example = json!({"keys": [
             {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
              "kid": "k20261201-Xb3kQ9mN2pLw", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
             {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
              "kid": "k20261101-aBcDeFgHiJkL", "x": "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08"}
         ]})),
        (status = 503, description = "The cache has expired and the keys cannot be read from the database",
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::Unavailable(anyhow::anyhow!("example"))))),
    ),
)]
#[tracing::instrument(skip_all, name = "ac.jwks")]
pub(super) async fn jwks(State(keys): State<KeyStore>) -> Result<Response, AcError> {
    let jwks = keys
        .published_jwks()
        .await
        .map_err(|e| AcError::Unavailable(e.into()))?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(jwks.as_ref().clone()),
    )
        .into_response())
}

/// The schema of the key set: `jsonwebtoken::jwk::JwkSet`, a foreign type, as AC fills it
/// (`keys::jwk`). The test that checks AC's answers against the document keeps it honest.
struct JwkSet;

impl PartialSchema for JwkSet {
    fn schema() -> RefOr<Schema> {
        let constant = |value: &str| common::openapi::string_enum([value]);
        let key = ObjectBuilder::new()
            .description(Some("An Ed25519 public key (RFC 8037)."))
            .property("kty", constant("OKP"))
            .property("crv", constant("Ed25519"))
            .property("alg", constant("EdDSA"))
            .property("use", constant("sig"))
            .property(
                "kid",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("The key's id, in the header of every token it signs.")),
            )
            .property(
                "x",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("The 32-byte public key, base64url without padding."))
                    .pattern(Some("^[A-Za-z0-9_-]{43}$")),
            )
            .required("kty")
            .required("crv")
            .required("alg")
            .required("use")
            .required("kid")
            .required("x");
        ObjectBuilder::new()
            .property("keys", ArrayBuilder::new().items(key))
            .required("keys")
            .into()
    }
}

impl ToSchema for JwkSet {}
