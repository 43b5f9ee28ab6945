//! Service-client and signing-key administration: `POST /api/v1/admin/service-clients`,
//! `POST /api/v1/admin/keys/rotate` and `POST /api/v1/admin/keys/{kid}/withdraw`, for service
//! tokens with the `admin` scope.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::error::ErrorEnvelope;
use common::http::StrictJson;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AdminService, NOT_AN_ADMIN_SERVICE};
use crate::db::{self, service_credentials};
use crate::domain::secret;
use crate::domain::validation::{
    ClientId, KNOWN_SCOPES, KNOWN_SERVICE_TYPES, Scopes, parse_service_type,
};
use crate::error::AcError;
use crate::state::AppState;

const DUPLICATE_CLIENT: &str = "a service client with this client_id already exists";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/service-clients", post(create_service_client))
        .route("/api/v1/admin/keys/rotate", post(rotate_keys))
        .route("/api/v1/admin/keys/{kid}/withdraw", post(withdraw_key))
}

/// A new service client.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"client_id": "reporting-job", "service_type": "admin", "scopes": ["admin"]}))]
pub(super) struct CreateServiceClientRequest {
    /// Unique.
    #[schema(schema_with = super::service_token::client_id_schema)]
    client_id: String,
    #[schema(schema_with = service_type_schema)]
    service_type: String,
    #[serde(default)]
    #[schema(schema_with = scopes_schema)]
    scopes: Vec<String>,
}

/// A new service client with its secret. Returned once, at creation: the secret is not stored
/// (only its Argon2id hash) and cannot be shown again.
#[derive(Serialize, ToSchema)]
#[schema(as = ServiceClientWithSecret)]
pub(super) struct CreateServiceClientResponse {
    client_id: String,
    /// 32 random bytes, base64url without padding.
    #[schema(format = Password)]
    client_secret: String,
    #[schema(schema_with = service_type_schema)]
    service_type: String,
    #[schema(schema_with = scopes_schema)]
    scopes: Vec<String>,
}

fn service_type_schema() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum(KNOWN_SERVICE_TYPES.iter().copied())
}

fn scopes_schema() -> utoipa::openapi::schema::ArrayBuilder {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(common::openapi::string_enum(KNOWN_SCOPES.iter().copied()))
        // A set, but a request may repeat a scope: the repeat is ignored, answers never have one.
        .description(Some("A set of scopes; a repeated one is ignored."))
        .default(Some(serde_json::json!([])))
}

/// Create a service client.
///
/// The answer carries the client's secret, shown this once.
#[utoipa::path(
    post,
    path = "/api/v1/admin/service-clients",
    tag = "admin",
    security(("serviceToken" = ["admin"])),
    request_body = CreateServiceClientRequest,
    responses(
        (status = 201, description = "Created; keep the secret, it cannot be shown again",
         body = CreateServiceClientResponse,
         example = json!({
             "client_id": "reporting-job",
             "client_secret": "q7ZzV0n3xW1b9Yk2Lr5Tg8Hs4Jd6Mf0PcAeNuBiOwQE",
             "service_type": "admin",
             "scopes": ["admin"]
         })),
        (status = 400, description = "A malformed client id, an unknown service type or scope", body = ErrorEnvelope,
         example = json!(super::openapi::refusal(ClientId::parse("X")))),
        (status = 403, description = "A user token, or a service token without the `admin` scope", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::Forbidden(NOT_AN_ADMIN_SERVICE)))),
        (status = 409, description = "A client with this id exists", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::Conflict(DUPLICATE_CLIENT)))),
        (status = 503, description = "No hashing slot freed up within `AC_HASH_WAIT_MS`",
         headers(("Retry-After" = u64, description = "`1`")),
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::Busy { retry_after_secs: 1 }))),
    ),
)]
#[tracing::instrument(skip_all, name = "ac.admin.service_client.create", fields(client_id))]
pub(super) async fn create_service_client(
    State(state): State<AppState>,
    _admin: AdminService,
    StrictJson(request): StrictJson<CreateServiceClientRequest>,
) -> Result<(StatusCode, Json<CreateServiceClientResponse>), AcError> {
    let client_id = ClientId::parse(&request.client_id)?;
    tracing::Span::current().record("client_id", client_id.as_str());
    let service_type = parse_service_type(&request.service_type)?;
    let scopes = Scopes::parse(&request.scopes)?;

    // 256 bits from the OS CSPRNG: far beyond guessing. (The token endpoint still limits
    // failures, but to bound the hashing work, not because this secret could be guessed.)
    let client_secret = secret::random_token(32)?;
    let secret_hash = state
        .hasher
        .hash(SecretString::from(client_secret.clone()))
        .await?;
    let row = service_credentials::insert(
        &state.pool,
        &service_credentials::NewCredential {
            client_id: client_id.as_str(),
            secret_hash: &secret_hash,
            service_type: &service_type,
            scopes: scopes.as_slice(),
        },
    )
    .await
    .map_err(|e| {
        if db::is_unique_violation(&e) {
            AcError::Conflict(DUPLICATE_CLIENT)
        } else {
            e.into()
        }
    })?;
    tracing::info!("service client created");
    Ok((
        StatusCode::CREATED,
        Json(CreateServiceClientResponse {
            client_id: row.client_id,
            client_secret,
            service_type: row.service_type,
            scopes: row.scopes,
        }),
    ))
}

/// The next key: published at once, signing from `activates_at`.
#[derive(Serialize, ToSchema)]
#[schema(as = KeyRotation)]
pub(super) struct RotateResponse {
    kid: String,
    /// When the key starts signing (the database's clock), `AC_KEY_ACTIVATION_DELAY_SECS`
    /// after the rotation.
    activates_at: DateTime<Utc>,
}

/// Rotate the signing key.
///
/// Publishes a new signing key now, which signs from `activates_at`. If a key is already
/// pending, that key is returned and no other is created, so repeating the call is harmless.
/// No body.
#[utoipa::path(
    post,
    path = "/api/v1/admin/keys/rotate",
    tag = "admin",
    security(("serviceToken" = ["admin"])),
    responses(
        (status = 200, description = "The next key", body = RotateResponse,
         example = json!({"kid": "k20261201-Xb3kQ9mN2pLw", "activates_at": "2026-12-01T12:01:00.123456Z"})),
        (status = 403, description = "A user token, or a service token without the `admin` scope", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::Forbidden(NOT_AN_ADMIN_SERVICE)))),
    ),
)]
#[tracing::instrument(skip_all, name = "ac.admin.keys.rotate", fields(kid))]
pub(super) async fn rotate_keys(
    State(state): State<AppState>,
    _admin: AdminService,
) -> Result<Json<RotateResponse>, AcError> {
    let rotation = state.keys.rotate().await?;
    tracing::Span::current().record("kid", rotation.kid.as_str());
    Ok(Json(RotateResponse {
        kid: rotation.kid,
        activates_at: rotation.activates_at,
    }))
}

/// The longest `kid` worth looking up; ours are 22 characters (`kYYYYMMDD-` and 12 random).
const MAX_KID_LEN: usize = 64;

/// A withdrawn key and the key that signs from now on.
#[derive(Serialize, ToSchema)]
#[schema(as = KeyWithdrawal)]
pub(super) struct WithdrawResponse {
    withdrawn_kid: String,
    signing_kid: String,
}

/// Withdraw a compromised signing key.
///
/// The emergency withdrawal of a key: it leaves the JWKS at once and, if it was signing or
/// about to, a new key signs from now on. Every token it signed is refused from then on (by
/// AC at once, by GC and MC when their verifiers next refresh the key set). No body.
#[utoipa::path(
    post,
    path = "/api/v1/admin/keys/{kid}/withdraw",
    tag = "admin",
    security(("serviceToken" = ["admin"])),
    params(("kid" = String, Path, description = "The key's id; anything that is not 1-64 characters of `[A-Za-z0-9_-]` is unknown",
            example = "k20261101-aBcDeFgHiJkL")),
    responses(
        (status = 200, description = "Withdrawn", body = WithdrawResponse,
         example = json!({"withdrawn_kid": "k20261101-aBcDeFgHiJkL", "signing_kid": "k20261201-Xb3kQ9mN2pLw"})),
        (status = 403, description = "A user token, or a service token without the `admin` scope", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::Forbidden(NOT_AN_ADMIN_SERVICE)))),
        (status = 404, description = "No key with this id", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::NotFound))),
    ),
)]
#[tracing::instrument(skip_all, name = "ac.admin.keys.withdraw", fields(kid))]
pub(super) async fn withdraw_key(
    State(state): State<AppState>,
    _admin: AdminService,
    Path(kid): Path<String>,
) -> Result<Json<WithdrawResponse>, AcError> {
    // Anything that cannot be one of our kids is unknown, and never reaches the database
    // (PostgreSQL refuses NUL bytes in text with an error, not a miss).
    let plausible = !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plausible {
        return Err(AcError::NotFound);
    }
    tracing::Span::current().record("kid", kid.as_str());
    let withdrawal = state.keys.withdraw(&kid).await?.ok_or(AcError::NotFound)?;
    Ok(Json(WithdrawResponse {
        withdrawn_kid: withdrawal.withdrawn_kid,
        signing_kid: withdrawal.signing_kid,
    }))
}
