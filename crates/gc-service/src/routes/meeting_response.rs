//! The meeting object of DESIGN §3, shared by every response that returns a meeting.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::meeting::{Meeting, MeetingStatus};
use crate::use_cases::get::MeetingView;
use common::display_name::DisplayName;
use common::meeting_code::MeetingCode;
use common::settings::MeetingSettings;
use utoipa::ToSchema;

/// A meeting (DESIGN §3), as one caller sees it. It has no field for the join-token secret,
/// nor the org's id.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Meeting)]
pub struct MeetingResponse {
    /// A UUIDv7.
    pub meeting_id: Uuid,
    #[schema(value_type = MeetingCode)]
    pub meeting_code: String,
    #[schema(value_type = DisplayName)]
    pub display_name: String,
    /// `scheduled` until the first seat is taken, `active` until it ends.
    #[schema(schema_with = meeting_status)]
    pub status: &'static str,
    /// The user who hosts it now: its creator, until the host hands it over or leaves (DESIGN
    /// §12); null while nobody hosts.
    pub host_id: Option<Uuid>,
    #[schema(minimum = 2)]
    pub max_participants: i32,
    pub settings: MeetingSettings,
    /// In UTC.
    pub scheduled_start_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When the first seat was taken.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `<GC_PUBLIC_BASE_URL>/m/<meeting_code>`.
    #[schema(format = "uri")]
    pub join_url: String,
    /// People seated in the room now (0 once ended).
    pub participant_count: u32,
    /// People waiting in the lobby: present only when the caller is the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u32, required = false)]
    pub lobby_count: Option<u32>,
}

/// The values of `status`, from the domain's statuses.
fn meeting_status() -> utoipa::openapi::schema::ObjectBuilder {
    common::openapi::string_enum(
        [
            MeetingStatus::Scheduled,
            MeetingStatus::Active,
            MeetingStatus::Ended,
        ]
        .map(MeetingStatus::as_str),
    )
}

impl MeetingResponse {
    /// The meeting as its host sees it right after creation: nobody in the room or the lobby.
    pub fn for_host_at_creation(meeting: Meeting, public_base_url: &str) -> Self {
        Self::new(meeting, public_base_url, 0, Some(0))
    }

    /// A meeting as one caller sees it: the lobby count only for its host.
    pub fn of_view(view: MeetingView, public_base_url: &str) -> Self {
        let lobby = view.for_host.then_some(view.counts.lobby);
        Self::new(
            view.meeting,
            public_base_url,
            view.counts.participants,
            lobby,
        )
    }

    /// An ended meeting (history, `/end`): nobody is present any more.
    pub fn ended(meeting: Meeting, public_base_url: &str, for_host: bool) -> Self {
        Self::new(meeting, public_base_url, 0, for_host.then_some(0))
    }

    fn new(
        meeting: Meeting,
        public_base_url: &str,
        participant_count: u32,
        lobby_count: Option<u32>,
    ) -> Self {
        Self {
            join_url: format!("{public_base_url}/m/{}", meeting.code),
            meeting_id: meeting.id,
            meeting_code: meeting.code.to_string(),
            display_name: meeting.display_name,
            status: meeting.status.as_str(),
            host_id: meeting.host_id,
            max_participants: meeting.max_participants,
            settings: meeting.settings,
            scheduled_start_time: meeting.scheduled_start_time,
            created_at: meeting.created_at,
            started_at: meeting.started_at,
            ended_at: meeting.ended_at,
            participant_count,
            lobby_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use common::meeting_code::MeetingCode;

    use super::*;

    #[test]
    fn the_response_has_the_design_fields_and_no_secret() {
        let meeting = Meeting {
            id: Uuid::now_v7(),
            org_id: Uuid::new_v4(),
            host_id: Some(Uuid::new_v4()),
            creator_id: Uuid::new_v4(),
            host_seq: 0,
            code: MeetingCode::parse("Ab3dE5fG7hJ9").unwrap(),
            display_name: "Standup".into(),
            status: MeetingStatus::Scheduled,
            max_participants: 100,
            settings: MeetingSettings::default(),
            settings_version: 1,
            scheduled_start_time: None,
            created_at: Utc::now(),
            started_at: None,
            ended_at: None,
        };
        let body = MeetingResponse::for_host_at_creation(meeting, "https://meet.example.com");
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["join_url"], "https://meet.example.com/m/Ab3dE5fG7hJ9");
        assert_eq!(json["status"], "scheduled");
        assert_eq!(json["participant_count"], 0);
        assert_eq!(json["lobby_count"], 0);
        assert!(json["started_at"].is_null());
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "created_at",
                "display_name",
                "ended_at",
                "host_id",
                "join_url",
                "lobby_count",
                "max_participants",
                "meeting_code",
                "meeting_id",
                "participant_count",
                "scheduled_start_time",
                "settings",
                "started_at",
                "status",
            ]
        );
        assert!(!json.to_string().contains("secret"));
        assert!(!json.to_string().contains("org_id"));
    }
}
