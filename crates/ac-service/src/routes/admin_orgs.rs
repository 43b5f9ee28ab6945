//! Organization administration: `POST /api/v1/admin/orgs` and
//! `PATCH /api/v1/admin/orgs/{org_id}`, for service tokens with the `admin` scope (checked
//! before the body is read).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{patch, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::display_name::DisplayName;
use common::error::ErrorEnvelope;
use common::http::StrictJson;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::parse_id;
use crate::auth::{AdminService, MISSING_SCOPE, NOT_AN_ADMIN_SERVICE};
use crate::db::{self, orgs};
use crate::domain::validation::{MaxConcurrentMeetings, MaxParticipants, OrgName, Slug};
use crate::error::AcError;
use crate::state::AppState;

const DUPLICATE_SLUG: &str = "an org with this slug already exists";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/orgs", post(create_org))
        .route("/api/v1/admin/orgs/{org_id}", patch(update_org))
}

/// A new organization.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"slug": "acme", "name": "Acme Corp", "max_concurrent_meetings": 20}))]
pub(super) struct CreateOrgRequest {
    /// The org's URL-safe handle, unique across the platform.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{1,62}$", examples("acme"))]
    slug: String,
    #[schema(value_type = DisplayName)]
    name: String,
    /// Meetings in `scheduled` or `active` state at once.
    #[schema(minimum = 1, maximum = 100000, default = 10)]
    max_concurrent_meetings: Option<i64>,
    /// The largest `max_participants` of one meeting.
    #[schema(minimum = 2, maximum = 10000, default = 100)]
    max_participants_per_meeting: Option<i64>,
}

/// The fields to change; absent or `null` ones keep their value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"max_concurrent_meetings": 20, "is_active": true}))]
pub(super) struct UpdateOrgRequest {
    #[schema(value_type = Option<DisplayName>)]
    name: Option<String>,
    #[schema(minimum = 1, maximum = 100000)]
    max_concurrent_meetings: Option<i64>,
    #[schema(minimum = 2, maximum = 10000)]
    max_participants_per_meeting: Option<i64>,
    /// `false` stops the org's users from signing in and its org admins from creating users,
    /// at once; tokens already issued stay valid until they expire.
    is_active: Option<bool>,
}

/// An organization.
#[derive(Serialize, ToSchema)]
#[schema(as = Org)]
pub(super) struct OrgResponse {
    org_id: Uuid,
    slug: String,
    name: String,
    max_concurrent_meetings: i32,
    max_participants_per_meeting: i32,
    is_active: bool,
    created_at: DateTime<Utc>,
}

/// An example org, as AC answers it.
fn org_example() -> serde_json::Value {
    serde_json::json!({
        "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0",
        "slug": "acme",
        "name": "Acme Corp",
        "max_concurrent_meetings": 20,
        "max_participants_per_meeting": 100,
        "is_active": true,
        "created_at": "2026-12-01T12:00:00.123456Z"
    })
}

impl From<orgs::OrgRow> for OrgResponse {
    fn from(row: orgs::OrgRow) -> Self {
        OrgResponse {
            org_id: row.id,
            slug: row.slug,
            name: row.name,
            max_concurrent_meetings: row.max_concurrent_meetings,
            max_participants_per_meeting: row.max_participants_per_meeting,
            is_active: row.is_active,
            created_at: row.created_at,
        }
    }
}

/// Create an organization.
#[utoipa::path(
    post,
    path = "/api/v1/admin/orgs",
    tag = "admin",
    security(("serviceToken" = ["admin"])),
    request_body = CreateOrgRequest,
    responses(
        (status = 201, description = "Created", body = OrgResponse, example = json!(org_example())),
        (status = 400, description = "A field out of bounds", body = ErrorEnvelope,
         example = json!(super::openapi::refusal(Slug::parse("-acme")))),
        (status = 403, description = "A user token, or a service token without the `admin` scope", body = ErrorEnvelope,
         examples(
             ("user_token" = (summary = "A user token", value = json!(super::openapi::example(AcError::Forbidden(NOT_AN_ADMIN_SERVICE))))),
             ("missing_scope" = (summary = "A service token without the admin scope", value = json!(super::openapi::example(AcError::Forbidden(MISSING_SCOPE))))),
         )),
        (status = 409, description = "An org with this slug exists", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::Conflict(DUPLICATE_SLUG)))),
    ),
)]
#[tracing::instrument(skip_all, name = "ac.admin.org.create", fields(client_id, org_id))]
pub(super) async fn create_org(
    State(state): State<AppState>,
    AdminService(admin): AdminService,
    StrictJson(request): StrictJson<CreateOrgRequest>,
) -> Result<(StatusCode, Json<OrgResponse>), AcError> {
    tracing::Span::current().record("client_id", admin.sub.as_str());
    let slug = Slug::parse(&request.slug)?;
    let name = OrgName::parse(&request.name)?;
    let max_meetings = MaxConcurrentMeetings::parse(request.max_concurrent_meetings.unwrap_or(10))?;
    let max_participants =
        MaxParticipants::parse(request.max_participants_per_meeting.unwrap_or(100))?;

    let row = orgs::insert(
        &state.pool,
        &orgs::NewOrg {
            slug: slug.as_str(),
            name: name.as_str(),
            max_concurrent_meetings: max_meetings.get(),
            max_participants_per_meeting: max_participants.get(),
        },
    )
    .await
    .map_err(|e| {
        if db::is_unique_violation(&e) {
            AcError::Conflict(DUPLICATE_SLUG)
        } else {
            e.into()
        }
    })?;
    tracing::Span::current().record("org_id", tracing::field::display(row.id));
    tracing::info!("org created");
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Change an organization.
///
/// Its name, limits, or whether it is active. An unknown or malformed `org_id` is 404.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/orgs/{org_id}",
    tag = "admin",
    security(("serviceToken" = ["admin"])),
    params(("org_id" = Uuid, Path, description = "The org's id; anything else is an unknown org (404)")),
    request_body = UpdateOrgRequest,
    responses(
        (status = 200, description = "The org after the change", body = OrgResponse, example = json!(org_example())),
        (status = 400, description = "A field out of bounds", body = ErrorEnvelope,
         example = json!(super::openapi::refusal(MaxConcurrentMeetings::parse(0)))),
        (status = 403, description = "A user token, or a service token without the `admin` scope", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::Forbidden(MISSING_SCOPE)))),
        (status = 404, description = "No org with this id", body = ErrorEnvelope,
         example = json!(super::openapi::example(AcError::NotFound))),
    ),
)]
#[tracing::instrument(skip_all, name = "ac.admin.org.update", fields(client_id, org_id))]
pub(super) async fn update_org(
    State(state): State<AppState>,
    AdminService(admin): AdminService,
    // A path segment that does not even decode (bytes that are not UTF-8) names nothing: 404,
    // in the envelope, like any other malformed id.
    org_id: Result<Path<String>, PathRejection>,
    StrictJson(request): StrictJson<UpdateOrgRequest>,
) -> Result<Json<OrgResponse>, AcError> {
    tracing::Span::current().record("client_id", admin.sub.as_str());
    let Ok(Path(org_id)) = org_id else {
        return Err(AcError::NotFound);
    };
    let org_id = parse_id(&org_id)?;
    tracing::Span::current().record("org_id", tracing::field::display(org_id));
    let name = request.name.as_deref().map(OrgName::parse).transpose()?;
    let max_meetings = request
        .max_concurrent_meetings
        .map(MaxConcurrentMeetings::parse)
        .transpose()?;
    let max_participants = request
        .max_participants_per_meeting
        .map(MaxParticipants::parse)
        .transpose()?;

    let changes = orgs::OrgChanges {
        name: name.as_ref().map(OrgName::as_str),
        max_concurrent_meetings: max_meetings.map(MaxConcurrentMeetings::get),
        max_participants_per_meeting: max_participants.map(MaxParticipants::get),
        is_active: request.is_active,
    };
    let row = orgs::update(&state.pool, org_id, &changes)
        .await?
        .ok_or(AcError::NotFound)?;
    tracing::info!("org updated");
    Ok(Json(row.into()))
}
