//! Service-client and signing-key administration: `POST /api/v1/admin/service-clients` and
//! `POST /api/v1/admin/keys/rotate`, for service tokens with the `admin` scope.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::http::StrictJson;
use common::jwt::{ServiceClaims, scope};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, require_scope};
use crate::db::{self, service_credentials};
use crate::domain::validation::{ClientId, Scopes, parse_service_type};
use crate::domain::{password, secret};
use crate::error::AcError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/service-clients", post(create_service_client))
        .route("/api/v1/admin/keys/rotate", post(rotate_keys))
}

/// Admin routes take a service token with the `admin` scope; a user token, whatever its roles,
/// is a known caller without that right (403).
pub(super) fn require_admin_service(caller: &Caller) -> Result<&ServiceClaims, AcError> {
    match caller {
        Caller::Service(claims) => {
            require_scope(claims, scope::ADMIN)?;
            Ok(claims)
        }
        Caller::User(_) => Err(AcError::Forbidden(
            "this route needs an admin service token",
        )),
    }
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
    caller: Caller,
    StrictJson(request): StrictJson<CreateServiceClientRequest>,
) -> Result<(StatusCode, Json<CreateServiceClientResponse>), AcError> {
    require_admin_service(&caller)?;
    let client_id = ClientId::parse(&request.client_id)?;
    tracing::Span::current().record("client_id", client_id.as_str());
    let service_type = parse_service_type(&request.service_type)?;
    let scopes = Scopes::parse(&request.scopes)?;

    // 256 bits from the OS CSPRNG: far beyond guessing, so no rate limit is needed on it.
    let client_secret = secret::random_token(32)?;
    let secret_hash = password::hash(SecretString::from(client_secret.clone())).await?;
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

#[derive(Serialize)]
struct RotateResponse {
    kid: String,
}

#[tracing::instrument(skip_all, name = "ac.admin.keys.rotate")]
async fn rotate_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<RotateResponse>, AcError> {
    require_admin_service(&caller)?;
    let kid = state.keys.rotate().await?;
    Ok(Json(RotateResponse { kid }))
}
