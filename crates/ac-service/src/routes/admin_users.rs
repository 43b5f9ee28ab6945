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
use common::display_name::DisplayName;
use common::error::ErrorEnvelope;
use common::http::StrictJson;
use common::jwt::{Role, scope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::parse_id;
use crate::auth::{Caller, require_scope};
use crate::db::{self, orgs, users};
use crate::domain::validation::{Email, NewPassword, Roles, parse_display_name};
use crate::error::AcError;
use crate::state::AppState;

const GRANTS_ADMIN: &str = "an org_admin cannot grant the admin role";
const NOT_ORG_ADMIN: &str = "creating users needs the org_admin role";
const DUPLICATE_EMAIL: &str = "a user with this email already exists";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/orgs/{org_id}/users", post(create_user))
}

/// A new user of the org.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@acme.test", "password": "correct-horse",
                          "display_name": "Ada", "roles": ["user", "org_admin"]}))]
pub(super) struct CreateUserRequest {
    /// Unique across the platform, case-insensitively; kept as typed. Trimmed, at most 254
    /// characters.
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    password: secrecy::SecretString,
    #[schema(value_type = DisplayName)]
    display_name: String,
    /// A user without roles may sign in but not create meetings. An org admin may not grant
    /// `admin`.
    #[serde(default)]
    #[schema(schema_with = roles_schema)]
    roles: Vec<String>,
}

/// A user. It has no field a password hash could leak through.
#[derive(Serialize, ToSchema)]
#[schema(as = User)]
pub(super) struct UserResponse {
    user_id: Uuid,
    org_id: Uuid,
    /// As typed at creation.
    email: String,
    display_name: String,
    #[schema(schema_with = roles_schema)]
    roles: Vec<String>,
    is_active: bool,
    created_at: DateTime<Utc>,
}

/// Roles: a set of `user`, `org_admin` and `admin`.
fn roles_schema() -> utoipa::openapi::schema::ArrayBuilder {
    let roles = [Role::User, Role::OrgAdmin, Role::Admin].map(Role::as_str);
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(common::openapi::string_enum(roles))
        // A set, but a request may repeat a role: the repeat is ignored, answers never have one.
        .description(Some("A set of roles; a repeated one is ignored."))
        .default(Some(serde_json::json!([])))
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

/// Create a user.
///
/// By an admin service, or by an active org admin of that (active) org, checked in the
/// database at the time of the call. An org admin of another org gets 404, exactly as for an
/// org that does not exist.
#[utoipa::path(
    post,
    path = "/api/v1/admin/orgs/{org_id}/users",
    tag = "admin",
    security(("serviceToken" = ["admin"]), ("userToken" = ["org_admin"])),
    params(("org_id" = Uuid, Path, description = "The org's id; anything else is an unknown org (404)")),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse,
         example = json!({
             "user_id": "6f1c2e9a-0b1d-4c55-9a43-2f8e1d7b3c10",
             "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0",
             "email": "ada@acme.test",
             "display_name": "Ada",
             "roles": ["org_admin", "user"],
             "is_active": true,
             "created_at": "2026-12-01T12:00:00.123456Z"
         })),
        (status = 400, description = "A field out of bounds: the e-mail, a password of fewer than 8 or more than 1024 characters, the name, an unknown role",
         body = ErrorEnvelope, example = json!(super::openapi::refusal(NewPassword::parse("short").map(|_| ())))),
        (status = 403, description = "A service token without the `admin` scope; a user token without the `org_admin` role, or whose user or org is no longer active; an org admin granting `admin`",
         body = ErrorEnvelope,
         examples(
             ("not_org_admin" = (summary = "A user token without the org_admin role",
                 value = json!(super::openapi::example(AcError::Forbidden(NOT_ORG_ADMIN))))),
             ("grants_admin" = (summary = "An org admin granting admin",
                 value = json!(super::openapi::example(AcError::Forbidden(GRANTS_ADMIN))))),
         )),
        (status = 404, description = "No org with this id, or an org admin's other org", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::NotFound))),
        (status = 409, description = "A user with this e-mail exists (case-insensitively)", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::Conflict(DUPLICATE_EMAIL)))),
        (status = 503, description = "No hashing slot freed up within `AC_HASH_WAIT_MS`",
         headers(("Retry-After" = u64, description = "`1`")),
         body = ErrorEnvelope, example = json!(super::openapi::example(AcError::Busy { retry_after_secs: 1 }))),
    ),
)]
#[tracing::instrument(skip_all, name = "ac.admin.user.create", fields(org_id, user_id))]
pub(super) async fn create_user(
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
        return Err(AcError::Forbidden(GRANTS_ADMIN));
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
            AcError::Conflict(DUPLICATE_EMAIL)
        } else {
            e.into()
        }
    })?;
    tracing::Span::current().record("user_id", tracing::field::display(row.id));
    tracing::info!("user created");
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// A caller allowed to create users in the org named by the path.
pub(super) struct UserCreator {
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
                return Err(AcError::Forbidden(NOT_ORG_ADMIN));
            }
            if claims.org_id != org_id {
                return Err(AcError::NotFound);
            }
            // The token may be up to an hour old; the database says whether the caller is
            // still an active org_admin of an active org.
            if !users::is_active_org_admin(&state.pool, claims.sub, org_id).await? {
                return Err(AcError::Forbidden(NOT_ORG_ADMIN));
            }
            Ok(true)
        }
    }
}
