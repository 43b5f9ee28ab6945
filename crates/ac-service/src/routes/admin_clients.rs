//! Service-client and signing-key administration: `POST /api/v1/admin/service-clients`,
//! `POST /api/v1/admin/keys/rotate` and `POST /api/v1/admin/keys/{kid}/withdraw`, for service
//! tokens with the `admin` scope.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::http::StrictJson;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::auth::AdminService;
use crate::db::{self, service_credentials};
use crate::domain::secret;
use crate::domain::validation::{ClientId, Scopes, parse_service_type};
use crate::error::AcError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/service-clients", post(create_service_client))
        .route("/api/v1/admin/keys/rotate", post(rotate_keys))
        .route("/api/v1/admin/keys/{kid}/withdraw", post(withdraw_key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateServiceClientRequest {
    client_id: String,
    service_type: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Returned once, at creation: the secret is not stored and cannot be shown again.
#[derive(Serialize)]
struct CreateServiceClientResponse {
    client_id: String,
    client_secret: String,
    service_type: String,
    scopes: Vec<String>,
}

#[tracing::instrument(skip_all, name = "ac.admin.service_client.create", fields(client_id))]
async fn create_service_client(
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
            AcError::Conflict("a service client with this client_id already exists")
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
#[derive(Serialize)]
struct RotateResponse {
    kid: String,
    activates_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all, name = "ac.admin.keys.rotate", fields(kid))]
async fn rotate_keys(
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
#[derive(Serialize)]
struct WithdrawResponse {
    withdrawn_kid: String,
    signing_kid: String,
}

/// Emergency withdrawal of a compromised key: it leaves the JWKS at once and, if it was signing
/// or about to, a new key signs from now on. Every token it signed is refused from then on (by
/// AC at once, by GC and MC when their verifiers next refresh the key set).
#[tracing::instrument(skip_all, name = "ac.admin.keys.withdraw", fields(kid))]
async fn withdraw_key(
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
