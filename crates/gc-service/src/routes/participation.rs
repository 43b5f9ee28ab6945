//! `/api/v1/meetings/{code}` beyond create: read, join, the lobby, leave, end, config, and
//! `/api/v1/meetings/history`. Thin adapters: extract, parse, call the use case, answer.

use axum::Json;
use axum::extract::{Path, Query, State};
use common::auth::Authenticated;
use common::error::ApiError;
use common::http::StrictJson;
use common::jwt::UserClaims;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::client::ClientInfo;
use crate::db::audit::Actor;
use crate::domain::meeting::{MaxParticipants, ValidationError};
use crate::error::Error;
use crate::routes::meeting_response::MeetingResponse;
use crate::routes::meetings::SettingsRequest;
use crate::startup::AppState;
use crate::use_cases::config::ConfigChange;
use crate::use_cases::history::{DEFAULT_PAGE_SIZE, HistoryRole, MAX_PAGE, MAX_PAGE_SIZE};
use crate::use_cases::{config, end, get, history, join, leave, lobby};

fn actor<'a>(caller: &UserClaims, client: &'a ClientInfo) -> Actor<'a> {
    Actor::User {
        id: caller.sub,
        ip: client.ip,
        user_agent: client.user_agent.as_deref(),
    }
}

/// `GET /{code}`.
#[tracing::instrument(name = "gc.meeting.get", skip_all)]
pub async fn get_meeting(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated<UserClaims>,
    Path(code): Path<String>,
) -> Result<Json<MeetingResponse>, Error> {
    let view = get::get_meeting(&state.rooms, &caller, &code).await?;
    Ok(Json(MeetingResponse::of_view(view, &state.public_base_url)))
}

#[derive(Debug, Serialize)]
pub struct JoinResponse {
    pub status: &'static str,
    pub role: &'static str,
    pub meeting_token: String,
    pub expires_in: u64,
    pub signaling_url: String,
    pub meeting: MeetingResponse,
}

/// `POST /{code}/join`.
#[tracing::instrument(name = "gc.meeting.join", skip_all)]
pub async fn join_meeting(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path(code): Path<String>,
) -> Result<Json<JoinResponse>, Error> {
    let joined = join::join_meeting(
        &state.rooms,
        &state.meeting_tokens,
        &caller,
        &code,
        actor(&caller, &client),
    )
    .await?;
    Ok(Json(JoinResponse {
        status: joined.admission.as_str(),
        role: joined.role.as_str(),
        meeting_token: joined.meeting_token,
        expires_in: joined.expires_in,
        signaling_url: joined.signaling_url,
        meeting: MeetingResponse::of_view(joined.view, &state.public_base_url),
    }))
}

#[derive(Debug, Serialize)]
pub struct LobbyDecision {
    pub user_id: Uuid,
    pub status: &'static str,
}

/// `POST /{code}/admit/{user_id}` (host).
#[tracing::instrument(name = "gc.meeting.admit", skip_all)]
pub async fn admit(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Json<LobbyDecision>, Error> {
    let user_id = lobby::admit(
        &state.rooms,
        &caller,
        &code,
        &user_id,
        actor(&caller, &client),
    )
    .await?;
    Ok(Json(LobbyDecision {
        user_id,
        status: "admitted",
    }))
}

/// `POST /{code}/reject/{user_id}` (host).
#[tracing::instrument(name = "gc.meeting.reject", skip_all)]
pub async fn reject(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Json<LobbyDecision>, Error> {
    let user_id = lobby::reject(
        &state.rooms,
        &caller,
        &code,
        &user_id,
        actor(&caller, &client),
    )
    .await?;
    Ok(Json(LobbyDecision {
        user_id,
        status: "rejected",
    }))
}

#[derive(Debug, Serialize)]
pub struct AdmitAllResponse {
    pub admitted: Vec<Uuid>,
    pub still_waiting: Vec<Uuid>,
}

/// `POST /{code}/admit-all` (host).
#[tracing::instrument(name = "gc.meeting.admit_all", skip_all)]
pub async fn admit_all(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path(code): Path<String>,
) -> Result<Json<AdmitAllResponse>, Error> {
    let (admitted, still_waiting) =
        lobby::admit_all(&state.rooms, &caller, &code, actor(&caller, &client)).await?;
    Ok(Json(AdmitAllResponse {
        admitted,
        still_waiting,
    }))
}

#[derive(Debug, Serialize)]
pub struct LeaveResponse {
    pub status: &'static str,
}

/// `POST /{code}/leave`.
#[tracing::instrument(name = "gc.meeting.leave", skip_all)]
pub async fn leave_meeting(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path(code): Path<String>,
) -> Result<Json<LeaveResponse>, Error> {
    leave::leave(&state.rooms, &caller, &code, actor(&caller, &client)).await?;
    Ok(Json(LeaveResponse { status: "left" }))
}

/// `POST /{code}/end` (host).
#[tracing::instrument(name = "gc.meeting.end", skip_all)]
pub async fn end_meeting(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path(code): Path<String>,
) -> Result<Json<MeetingResponse>, Error> {
    let meeting = end::end_by_host(&state.rooms, &caller, &code, actor(&caller, &client)).await?;
    Ok(Json(MeetingResponse::ended(
        meeting,
        &state.public_base_url,
        true,
    )))
}

/// Body of `PATCH /{code}/config`: any of the settings (and `lock_room`) and
/// `max_participants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    #[serde(default)]
    pub waiting_room_enabled: Option<bool>,
    /// Another name for `waiting_room_enabled` (DESIGN §3).
    #[serde(default)]
    pub lock_room: Option<bool>,
    #[serde(default)]
    pub enable_transcription: Option<bool>,
    #[serde(default)]
    pub enable_e2e_encryption: Option<bool>,
    #[serde(default)]
    pub require_auth: Option<bool>,
    #[serde(default)]
    pub recording_enabled: Option<bool>,
    #[serde(default)]
    pub allow_guests: Option<bool>,
    #[serde(default)]
    pub allow_external_participants: Option<bool>,
    #[serde(default)]
    pub max_participants: Option<i32>,
}

impl ConfigRequest {
    fn into_change(self) -> Result<ConfigChange, ValidationError> {
        let settings = SettingsRequest {
            waiting_room_enabled: self.waiting_room_enabled,
            lock_room: self.lock_room,
            enable_transcription: self.enable_transcription,
            enable_e2e_encryption: self.enable_e2e_encryption,
            require_auth: self.require_auth,
            recording_enabled: self.recording_enabled,
            allow_guests: self.allow_guests,
            allow_external_participants: self.allow_external_participants,
        };
        Ok(ConfigChange {
            settings: settings.into_change()?,
            max_participants: self
                .max_participants
                .map(MaxParticipants::parse)
                .transpose()?,
        })
    }
}

/// `PATCH /{code}/config` (host). The meeting and the caller's right to change it are checked
/// before the body's errors are answered.
#[tracing::instrument(name = "gc.meeting.config", skip_all)]
pub async fn update_config(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated<UserClaims>,
    client: ClientInfo,
    Path(code): Path<String>,
    body: Result<StrictJson<ConfigRequest>, ApiError>,
) -> Result<Json<MeetingResponse>, Error> {
    let change = body
        .map_err(Error::from)
        .and_then(|StrictJson(body)| body.into_change().map_err(Error::from));
    let view = config::update_config(
        &state.rooms,
        &caller,
        &code,
        change,
        actor(&caller, &client),
    )
    .await?;
    Ok(Json(MeetingResponse::of_view(view, &state.public_base_url)))
}

/// Query of `GET /history`; unknown parameters are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HistoryResponse {
    pub items: Vec<MeetingResponse>,
    pub page: u32,
    pub page_size: u32,
    pub total: i64,
}

/// `GET /history`.
#[tracing::instrument(name = "gc.meeting.history", skip_all)]
pub async fn history(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated<UserClaims>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryResponse>, Error> {
    let Query(query) = query.map_err(|rejection| {
        Error::Api(common::error::ApiError::bad_request(format!(
            "invalid query: {}",
            rejection.body_text()
        )))
    })?;
    let page = query.page.unwrap_or(1);
    let page_size = query.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ValidationError::InvalidPage.into());
    }
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ValidationError::InvalidPageSize.into());
    }
    let role = match query.role.as_deref() {
        None | Some("host") => HistoryRole::Host,
        Some("guest") => HistoryRole::Guest,
        Some("any") => HistoryRole::Any,
        Some(_) => return Err(ValidationError::InvalidHistoryRole.into()),
    };
    let found = history::history(&state.rooms.pool, &caller, role, page, page_size).await?;
    let items = found
        .items
        .into_iter()
        .map(|m| {
            let for_host = m.host_id == caller.sub;
            MeetingResponse::ended(m, &state.public_base_url, for_host)
        })
        .collect();
    Ok(Json(HistoryResponse {
        items,
        page: found.page,
        page_size: found.page_size,
        total: found.total,
    }))
}
