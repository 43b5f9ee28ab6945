//! The meeting object of DESIGN §3, shared by every response that returns a meeting.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::meeting::Meeting;
use crate::use_cases::get::MeetingView;
use common::settings::MeetingSettings;

/// The meeting object of DESIGN §3. It has no field for the join-token secret.
#[derive(Debug, Serialize)]
pub struct MeetingResponse {
    pub meeting_id: Uuid,
    pub meeting_code: String,
    pub display_name: String,
    pub status: &'static str,
    pub host_id: Uuid,
    pub max_participants: i32,
    pub settings: MeetingSettings,
    pub scheduled_start_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub join_url: String,
    pub participant_count: u32,
    /// Only the host sees the lobby.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lobby_count: Option<u32>,
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
    use crate::domain::meeting::MeetingStatus;

    #[test]
    fn the_response_has_the_design_fields_and_no_secret() {
        let meeting = Meeting {
            id: Uuid::now_v7(),
            org_id: Uuid::new_v4(),
            host_id: Uuid::new_v4(),
            code: MeetingCode::parse("Ab3dE5fG7hJ9").unwrap(),
            display_name: "Standup".into(),
            status: MeetingStatus::Scheduled,
            max_participants: 100,
            settings: MeetingSettings::default(),
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
