//! `/api/v1/meetings`: request and response types and thin handlers over the use cases.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use common::display_name::DisplayName;
use common::http::StrictJson;
use serde::Deserialize;

use crate::auth::MeetingCreator;
use crate::client::ClientInfo;
use crate::db::meetings::AuditContext;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::meeting::{
    CreateMeeting, MaxParticipants, SettingsChange, ValidationError, check_scheduled_start,
};
use crate::error::Error;
use crate::routes::meeting_response::MeetingResponse;
use crate::startup::AppState;
use crate::use_cases::create::{self, Created};
use common::settings::MeetingSettings;

/// Header a client sets to make a create safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a 201 that replays an earlier create instead of creating.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Body of `POST /api/v1/meetings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMeetingRequest {
    pub display_name: String,
    #[serde(default)]
    pub max_participants: Option<i32>,
    #[serde(default)]
    pub scheduled_start_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "common::json::optional_object")]
    pub settings: Option<SettingsRequest>,
}

/// The settings a request may set; absent ones keep their secure default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsRequest {
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
}

impl SettingsRequest {
    /// Folds `lock_room` into `waiting_room_enabled`; both may be sent only if they agree.
    pub fn into_change(self) -> Result<SettingsChange, ValidationError> {
        let waiting_room_enabled = match (self.waiting_room_enabled, self.lock_room) {
            (Some(a), Some(b)) if a != b => return Err(ValidationError::ConflictingWaitingRoom),
            (a, b) => a.or(b),
        };
        Ok(SettingsChange {
            waiting_room_enabled,
            enable_transcription: self.enable_transcription,
            enable_e2e_encryption: self.enable_e2e_encryption,
            require_auth: self.require_auth,
            recording_enabled: self.recording_enabled,
            allow_guests: self.allow_guests,
            allow_external_participants: self.allow_external_participants,
        })
    }
}

impl CreateMeetingRequest {
    /// `now` is the server's clock, against which a scheduled start time is checked.
    pub fn into_domain(self, now: DateTime<Utc>) -> Result<CreateMeeting, ValidationError> {
        let change = self.settings.unwrap_or_default().into_change()?;
        Ok(CreateMeeting {
            display_name: DisplayName::parse(&self.display_name)?,
            max_participants: self
                .max_participants
                .map(MaxParticipants::parse)
                .transpose()?,
            scheduled_start_time: self
                .scheduled_start_time
                .map(|start| check_scheduled_start(start, now))
                .transpose()?,
            settings: change.apply_to(MeetingSettings::default()),
        })
    }
}

/// The `Idempotency-Key` header, if sent: exactly once, 1–255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ValidationError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ValidationError::InvalidIdempotencyKey);
    }
    let raw = value
        .to_str()
        .map_err(|_| ValidationError::InvalidIdempotencyKey)?;
    IdempotencyKey::parse(raw).map(Some)
}

/// `POST /api/v1/meetings`. The role is checked (by [`MeetingCreator`]) before the body is
/// read.
#[tracing::instrument(
    name = "gc.meeting.create",
    skip_all,
    fields(user_id, org_id, meeting_id, meeting_code, idempotency_key, replayed)
)]
pub async fn create_meeting(
    State(state): State<AppState>,
    MeetingCreator(creator): MeetingCreator,
    client: ClientInfo,
    headers: HeaderMap,
    StrictJson(body): StrictJson<CreateMeetingRequest>,
) -> Result<Response, Error> {
    let span = tracing::Span::current();
    span.record("user_id", tracing::field::display(creator.sub));
    span.record("org_id", tracing::field::display(creator.org_id));
    let request = body.into_domain(Utc::now())?;
    let key = idempotency_key(&headers)?;
    span.record("idempotency_key", key.is_some());
    let audit = AuditContext {
        ip: client.ip,
        user_agent: client.user_agent.as_deref(),
    };
    let created =
        create::create_meeting(&state.pool, &state.rng, &creator, request, key, &audit).await?;

    let (meeting, replayed) = match created {
        Created::New(meeting) => (meeting, false),
        Created::Replayed(meeting) => (meeting, true),
    };
    span.record("meeting_id", tracing::field::display(meeting.id));
    span.record("meeting_code", meeting.code.as_str());
    span.record("replayed", replayed);
    tracing::info!(
        meeting_id = %meeting.id,
        meeting_code = %meeting.code,
        user_id = %creator.sub,
        org_id = %creator.org_id,
        replayed,
        "meeting created"
    );

    let body = MeetingResponse::for_host_at_creation(meeting, &state.public_base_url);
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use common::error::ErrorCode;
    use common::http::parse_json;

    use super::*;

    /// Parses as the handler would on 2029-12-01, a month before the start times used below.
    fn parse(body: &str) -> Result<CreateMeeting, String> {
        let now = Utc.with_ymd_and_hms(2029, 12, 1, 0, 0, 0).unwrap();
        parse_json::<CreateMeetingRequest>(body.as_bytes())
            .map_err(|e| e.message.to_string())
            .and_then(|r| r.into_domain(now).map_err(|e| e.to_string()))
    }

    #[test]
    fn a_minimal_body_gets_the_secure_defaults() {
        let request = parse(r#"{"display_name": "  Standup  "}"#).unwrap();
        assert_eq!(request.display_name.as_str(), "Standup");
        assert_eq!(request.max_participants, None);
        assert_eq!(request.scheduled_start_time, None);
        assert_eq!(request.settings, MeetingSettings::default());
    }

    #[test]
    fn every_field_of_the_design_is_accepted() {
        let request = parse(
            r#"{"display_name": "Board", "max_participants": 12,
                "scheduled_start_time": "2030-01-01T09:00:00+01:00",
                "settings": {"waiting_room_enabled": false, "enable_transcription": true,
                             "enable_e2e_encryption": false, "require_auth": false,
                             "recording_enabled": true, "allow_guests": true,
                             "allow_external_participants": true}}"#,
        )
        .unwrap();
        assert_eq!(request.max_participants.map(MaxParticipants::get), Some(12));
        assert_eq!(
            request.scheduled_start_time,
            Utc.with_ymd_and_hms(2030, 1, 1, 8, 0, 0).single()
        );
        let s = request.settings;
        assert!(!s.waiting_room_enabled && !s.enable_e2e_encryption && !s.require_auth);
        assert!(s.enable_transcription && s.recording_enabled && s.allow_guests);
        assert!(s.allow_external_participants);
    }

    #[test]
    fn lock_room_is_another_name_for_the_waiting_room() {
        let off = parse(r#"{"display_name": "a", "settings": {"lock_room": false}}"#).unwrap();
        assert!(!off.settings.waiting_room_enabled);
        let both = parse(
            r#"{"display_name": "a", "settings": {"lock_room": false, "waiting_room_enabled": false}}"#,
        )
        .unwrap();
        assert!(!both.settings.waiting_room_enabled);
        let conflicting = parse(
            r#"{"display_name": "a", "settings": {"lock_room": true, "waiting_room_enabled": false}}"#,
        );
        assert!(conflicting.unwrap_err().contains("lock_room"));
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        let top = parse(r#"{"display_name": "a", "meeting_code": "AAAAAAAAAAAA"}"#);
        assert!(top.unwrap_err().contains("unknown field `meeting_code`"));
        let nested = parse(r#"{"display_name": "a", "settings": {"mute_all": true}}"#);
        assert!(nested.unwrap_err().contains("unknown field `mute_all`"));
        let secret = parse(r#"{"display_name": "a", "join_token_secret": "AA=="}"#);
        assert!(secret.is_err());
    }

    #[test]
    fn wrong_types_missing_fields_and_malformed_json_are_bad_requests() {
        for body in [
            r#"{"display_name": 5}"#,
            r#"{"display_name": "a", "max_participants": "10"}"#,
            r#"{"display_name": "a", "max_participants": 10.5}"#,
            r#"{"display_name": "a", "max_participants": 99999999999}"#,
            r#"{"display_name": "a", "settings": {"recording_enabled": "yes"}}"#,
            r#"{"display_name": "a", "scheduled_start_time": "tomorrow"}"#,
            r#"{"display_name": "a", "scheduled_start_time": "2030-01-01T09:00:00"}"#,
            r#"{"max_participants": 10}"#,
            r#"{"display_name": "a""#,
            r#"["display_name"]"#,
            r#"{"display_name": "a", "settings": [true]}"#,
            "null",
            "",
        ] {
            let error = parse_json::<CreateMeetingRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(error.code, ErrorCode::BadRequest, "{body}");
        }
    }

    #[test]
    fn field_rules_apply_after_parsing() {
        assert!(
            parse(r#"{"display_name": "   "}"#)
                .unwrap_err()
                .contains("blank")
        );
        let long = format!(r#"{{"display_name": "{}"}}"#, "x".repeat(256));
        assert!(parse(&long).unwrap_err().contains("255"));
        assert!(parse(r#"{"display_name": "a", "max_participants": 1}"#).is_err());
        assert!(parse(r#"{"display_name": "a", "max_participants": 2}"#).is_ok());
    }

    #[test]
    fn the_idempotency_key_header_is_optional_single_and_printable() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers), Ok(None));
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("retry-1"));
        assert_eq!(
            idempotency_key(&headers).unwrap().unwrap().as_str(),
            "retry-1"
        );
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("retry-2"));
        assert!(idempotency_key(&headers).is_err());
        let mut spaced = HeaderMap::new();
        spaced.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("has space"));
        assert!(idempotency_key(&spaced).is_err());
        let mut empty = HeaderMap::new();
        empty.insert(IDEMPOTENCY_KEY, HeaderValue::from_static(""));
        assert!(idempotency_key(&empty).is_err());
    }
}
