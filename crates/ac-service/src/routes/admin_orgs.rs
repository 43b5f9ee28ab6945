//! Organization administration: `POST /api/v1/admin/orgs` and
//! `PATCH /api/v1/admin/orgs/{org_id}`, for service tokens with the `admin` scope (checked
//! before the body is read).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{patch, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::http::StrictJson;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::parse_id;
use crate::auth::AdminService;
use crate::db::{self, orgs};
use crate::domain::validation::{MaxConcurrentMeetings, MaxParticipants, OrgName, Slug};
use crate::error::AcError;
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/orgs", post(create_org))
        .route("/api/v1/admin/orgs/{org_id}", patch(update_org))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrgRequest {
    slug: String,
    name: String,
    max_concurrent_meetings: Option<i64>,
    max_participants_per_meeting: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateOrgRequest {
    name: Option<String>,
    max_concurrent_meetings: Option<i64>,
    max_participants_per_meeting: Option<i64>,
    is_active: Option<bool>,
}

/// The org object of the API.
#[derive(Serialize)]
pub(super) struct OrgResponse {
    org_id: Uuid,
    slug: String,
    name: String,
    max_concurrent_meetings: i32,
    max_participants_per_meeting: i32,
    is_active: bool,
    created_at: DateTime<Utc>,
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

#[tracing::instrument(skip_all, name = "ac.admin.org.create", fields(client_id, org_id))]
async fn create_org(
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
            AcError::Conflict("an org with this slug already exists")
        } else {
            e.into()
        }
    })?;
    tracing::Span::current().record("org_id", tracing::field::display(row.id));
    tracing::info!("org created");
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[tracing::instrument(skip_all, name = "ac.admin.org.update", fields(client_id, org_id))]
async fn update_org(
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
