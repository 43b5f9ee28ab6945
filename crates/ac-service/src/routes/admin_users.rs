//! `POST /api/v1/admin/orgs/{org_id}/users`: creating a user, by an admin service or by an
//! `org_admin` of that org.
//!
//! An `org_admin` of another org gets 404, exactly like an org that does not exist, so org ids
//! cannot be probed (DESIGN §7). An `org_admin` may hand out `user` and `org_admin` but never
//! `admin`. Who may call is decided (by [`UserCreator`]) before the body is read.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::http::StrictJson;
use common::jwt::{Role, scope};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::parse_id;
use crate::auth::{Caller, require_scope};
use crate::db::{self, orgs, users};
use crate::domain::validation::{Email, NewPassword, Roles, parse_display_name};
use crate::error::AcError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/orgs/{org_id}/users", post(create_user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserRequest {
    email: String,
    password: secrecy::SecretString,
    display_name: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// The user object of the API; it has no field a password hash could leak through.
#[derive(Serialize)]
struct UserResponse {
    user_id: Uuid,
    org_id: Uuid,
    email: String,
    display_name: String,
    roles: Vec<String>,
    is_active: bool,
    created_at: DateTime<Utc>,
}

impl From<users::UserRow> for UserResponse {
    fn from(row: users::UserRow) -> Self {
        UserResponse {
            user_id: row.id,
            org_id: row.org_id,
            email: row.email,
            display_name: row.display_name,
            roles: row.roles,
            is_active: row.is_active,
            created_at: row.created_at,
        }
    }
}

#[tracing::instrument(skip_all, name = "ac.admin.user.create", fields(org_id, user_id))]
async fn create_user(
    State(state): State<AppState>,
    creator: UserCreator,
    StrictJson(request): StrictJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserResponse>), AcError> {
    let UserCreator {
        org_id,
        acting_org_admin,
    } = creator;
    tracing::Span::current().record("org_id", tracing::field::display(org_id));

    use secrecy::ExposeSecret;
    let email = Email::parse(&request.email)?;
    let password = NewPassword::parse(request.password.expose_secret())?;
    let display_name = parse_display_name(&request.display_name)?;
    let roles = Roles::parse(&request.roles)?;
    if acting_org_admin && roles.contains(Role::Admin) {
        return Err(AcError::Forbidden(
            "an org_admin cannot grant the admin role",
        ));
    }
    if orgs::find(&state.pool, org_id).await?.is_none() {
        return Err(AcError::NotFound);
    }

    let password_hash = state.hasher.hash(password.into_secret()).await?;
    let row = users::insert(
        &state.pool,
        &users::NewUser {
            org_id,
            email: email.as_str(),
            password_hash: &password_hash,
            display_name: display_name.as_str(),
            roles: &roles.as_strings(),
        },
    )
    .await
    .map_err(|e| {
        if db::is_unique_violation(&e) {
            AcError::Conflict("a user with this email already exists")
        } else {
            e.into()
        }
    })?;
    tracing::Span::current().record("user_id", tracing::field::display(row.id));
    tracing::info!("user created");
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// A caller allowed to create users in the org named by the path.
struct UserCreator {
    org_id: Uuid,
    /// Acting as an `org_admin` (whose grants are restricted) rather than as an admin service.
    acting_org_admin: bool,
}

impl FromRequestParts<AppState> for UserCreator {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AcError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Path(org_id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AcError::NotFound)?;
        let org_id = parse_id(&org_id)?;
        let acting_org_admin = authorize(state, &caller, org_id).await?;
        Ok(UserCreator {
            org_id,
            acting_org_admin,
        })
    }
}

/// Decides whether `caller` may create users in `org_id`. Returns whether it acts as an
/// `org_admin` (whose grants are restricted) rather than as an admin service.
async fn authorize(state: &AppState, caller: &Caller, org_id: Uuid) -> Result<bool, AcError> {
    match caller {
        Caller::Service(claims) => {
            require_scope(claims, scope::ADMIN)?;
            Ok(false)
        }
        Caller::User(claims) => {
            if !claims.has_role(Role::OrgAdmin) {
                return Err(AcError::Forbidden(
                    "creating users needs the org_admin role",
                ));
            }
            if claims.org_id != org_id {
                return Err(AcError::NotFound);
            }
            // The token may be up to an hour old; the database says whether the caller is
            // still an active org_admin of an active org.
            if !users::is_active_org_admin(&state.pool, claims.sub, org_id).await? {
                return Err(AcError::Forbidden(
                    "creating users needs the org_admin role",
                ));
            }
            Ok(true)
        }
    }
}
