//! `POST /api/v1/auth/internal/meeting-token`: GC asks AC to sign a meeting token for a user it
//! has admitted (or put in the lobby). Only a service token with `internal:meeting-token` may
//! ask; AC checks the shape of the grant, GC is responsible for its truth.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::http::StrictJson;
use common::jwt::MeetingRole;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::MeetingTokenRequester;
use crate::domain::validation::{parse_display_name, parse_meeting_code};
use crate::error::AcError;
use crate::startup::AppState;
use crate::tokens::MeetingGrant;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/auth/internal/meeting-token",
        post(issue_meeting_token),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeetingTokenRequest {
    user_id: Uuid,
    meeting_id: Uuid,
    meeting_code: String,
    org_id: Uuid,
    role: MeetingRole,
    name: String,
    /// Requested lifetime; capped at 15 minutes.
    ttl_secs: Option<u64>,
}

#[derive(Serialize)]
struct MeetingTokenResponse {
    token: String,
    expires_in: u64,
}

#[tracing::instrument(
    skip_all,
    name = "ac.token.meeting",
    fields(client_id = %caller.0.sub, meeting_id, org_id)
)]
async fn issue_meeting_token(
    State(state): State<AppState>,
    // Before the body: a caller without the scope learns nothing from a malformed one.
    caller: MeetingTokenRequester,
    StrictJson(request): StrictJson<MeetingTokenRequest>,
) -> Result<Json<MeetingTokenResponse>, AcError> {
    let span = tracing::Span::current();
    span.record("meeting_id", tracing::field::display(request.meeting_id));
    span.record("org_id", tracing::field::display(request.org_id));
    let meeting_code = parse_meeting_code(&request.meeting_code)?;
    let name = parse_display_name(&request.name)?;
    if request.ttl_secs == Some(0) {
        return Err(AcError::BadRequest("ttl_secs must be positive".into()));
    }
    let issued = state
        .tokens
        .issue_meeting(
            MeetingGrant {
                user_id: request.user_id,
                meeting_id: request.meeting_id,
                meeting_code,
                org_id: request.org_id,
                role: request.role,
                name: name.as_str().to_owned(),
            },
            request.ttl_secs,
        )
        .await?;
    tracing::info!(role = request.role.as_str(), "meeting token issued");
    Ok(Json(MeetingTokenResponse {
        token: issued.token,
        expires_in: issued.expires_in,
    }))
}
