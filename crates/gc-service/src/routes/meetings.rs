//! `/api/v1/meetings`: request and response types and thin handlers over the use cases.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use common::display_name::DisplayName;
use common::error::ErrorEnvelope;
use common::http::StrictJson;
use ring::rand::SystemRandom;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::MeetingCreator;
use crate::client::ClientInfo;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::meeting::{
    CreateMeeting, MaxParticipants, SettingsChange, ValidationError, check_scheduled_start,
};
use crate::error::{Error, forbidden};
use crate::routes::meeting_response::MeetingResponse;
use crate::state::PublicBaseUrl;
use crate::use_cases::create::{self, Created, Creates};
use common::settings::MeetingSettings;

/// Header a client sets to make a create safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a 201 that replays an earlier create instead of creating.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Body of `POST /api/v1/meetings`. `null` means the same as leaving a field out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMeetingRequest {
    #[schema(value_type = DisplayName)]
    pub display_name: String,
    /// 2 up to the org's `max_participants_per_meeting` (at most 10000, AC's bound); out of
    /// range is a 400, never capped. Default: `min(100, org limit)`.
    #[serde(default)]
    #[schema(minimum = 2, maximum = 10000, examples(25))]
    pub max_participants: Option<i32>,
    /// RFC 3339 with an offset (`Z` or `+hh:mm`), between 5 minutes ago and 366 days ahead;
    /// returned in UTC. A scheduled meeting nobody joins expires 24 h after it.
    #[serde(default)]
    #[schema(examples("2027-01-07T09:00:00+01:00"))]
    pub scheduled_start_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "common::json::optional_object")]
    #[schema(nullable = true)]
    pub settings: Option<SettingsRequest>,
}

/// The settings a request may set; absent (or `null`) ones keep their secure default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsRequest {
    /// Default `true`.
    #[serde(default)]
    pub waiting_room_enabled: Option<bool>,
    /// Another name for `waiting_room_enabled` (DESIGN §3); if both are sent they must agree.
    #[serde(default)]
    pub lock_room: Option<bool>,
    /// Default `false`.
    #[serde(default)]
    pub enable_transcription: Option<bool>,
    /// Default `true`.
    #[serde(default)]
    pub enable_e2e_encryption: Option<bool>,
    /// Default `true`.
    #[serde(default)]
    pub require_auth: Option<bool>,
    /// Default `false`.
    #[serde(default)]
    pub recording_enabled: Option<bool>,
    /// Default `false`.
    #[serde(default)]
    pub allow_guests: Option<bool>,
    /// Default `false`.
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
        let settings = change.apply_to(MeetingSettings::default());
        crate::domain::meeting::check_settings(&settings)?;
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
            settings,
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

/// Create a meeting.
///
/// Also served at `/api/v1/meetings/` (never a redirect). The caller needs the role `user`,
/// `org_admin` or `admin`, checked before the body is read; the meeting's org is the token's
/// `org_id` and its host the token's `sub`. A new meeting is `scheduled` and takes one of the
/// org's `max_concurrent_meetings` places until it ends. With an `Idempotency-Key`, a retry by
/// the same user with the same key and request returns the first meeting (201 with
/// `Idempotent-Replayed: true`) and creates nothing.
///
/// Order of checks: authentication (401, 503), role (403), content type, size and JSON shape
/// (400, 413), field rules (400), `Idempotency-Key` format (400), then the database: a stored
/// key (replay or 409), org or user inactive (403), `max_participants` above the org limit
/// (400), org at its limit (403).
#[utoipa::path(
    post,
    path = "/api/v1/meetings",
    tag = "meetings",
    security(("userToken" = ["user", "org_admin", "admin"])),
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false,
         description = "Makes the create safe to retry: 1-255 visible ASCII characters (`!` to `~`), sent once; per user, honoured for 24 hours",
         min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$",
         example = "0190f1b2-7c1e-7abc-8def-0123456789ab"),
    ),
    request_body(content = CreateMeetingRequest,
        examples(
            ("minimal" = (summary = "A name; everything else takes its default",
                value = json!({"display_name": "Standup"}))),
            ("full" = (summary = "Every field",
                value = json!({"display_name": "Weekly sync", "max_participants": 25,
                               "scheduled_start_time": "2027-01-07T09:00:00+01:00",
                               "settings": {"lock_room": false, "enable_transcription": true}}))),
        )),
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the meeting a first request with the same key created, in its current state). No `Location` header.",
         headers(("Idempotent-Replayed" = String, description = "`true` on a replay; absent otherwise")),
         body = MeetingResponse, example = json!(super::openapi::meeting_example("scheduled"))),
        (status = 400, description = "A field breaks its rule, `max_participants` is above the org's limit, `lock_room` and `waiting_room_enabled` disagree, or the `Idempotency-Key` is malformed",
         body = ErrorEnvelope,
         examples(
             ("display_name" = (summary = "A blank display_name",
                 value = json!(super::openapi::example(Error::Validation(ValidationError::DisplayName(common::display_name::DisplayNameError::Blank)))))),
             ("above_org_limit" = (summary = "max_participants above the org's max_participants_per_meeting",
                 value = json!(super::openapi::example(Error::Validation(ValidationError::MaxParticipantsAboveOrgLimit { max: 100 }))))),
             ("lock_room" = (summary = "lock_room and waiting_room_enabled disagree",
                 value = json!(super::openapi::example(Error::Validation(ValidationError::ConflictingWaitingRoom))))),
             ("scheduled_start_time" = (summary = "A start time in the past",
                 value = json!(super::openapi::example(Error::Validation(ValidationError::ScheduledStartInPast))))),
             ("idempotency_key" = (summary = "A malformed Idempotency-Key",
                 value = json!(super::openapi::example(Error::Validation(ValidationError::InvalidIdempotencyKey))))),
         )),
        (status = 403, description = "The token lacks the role; the user or the org is not active; or the org already has `max_concurrent_meetings` meetings in `scheduled` or `active`",
         body = ErrorEnvelope,
         examples(
             ("missing_role" = (summary = "The token has none of user, org_admin, admin",
                 value = json!(super::openapi::example(Error::Forbidden(forbidden::MISSING_ROLE.into()))))),
             ("user_not_active" = (summary = "The user was deactivated",
                 value = json!(super::openapi::example(Error::Forbidden(forbidden::USER_NOT_ACTIVE.into()))))),
             ("org_not_active" = (summary = "The org is unknown or deactivated",
                 value = json!(super::openapi::example(Error::Forbidden(forbidden::ORG_NOT_ACTIVE.into()))))),
             ("org_meeting_limit_reached" = (summary = "The org is at its concurrent-meeting limit",
                 value = json!(super::openapi::example(Error::OrgMeetingLimitReached)))),
         )),
        (status = 409, description = "The `Idempotency-Key` was used with another request",
         body = ErrorEnvelope, example = json!(super::openapi::example(Error::IdempotencyKeyReused))),
    ),
)]
#[tracing::instrument(
    name = "gc.meeting.create",
    skip_all,
    fields(user_id, org_id, meeting_id, meeting_code, idempotency_key, replayed)
)]
pub async fn create_meeting(
    State(creates): State<Creates>,
    State(rng): State<SystemRandom>,
    State(base_url): State<PublicBaseUrl>,
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
    let created =
        create::create_meeting(&creates, &rng, &creator, request, key, client.origin()).await?;

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

    let body = MeetingResponse::for_host_at_creation(meeting, base_url.as_str());
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
