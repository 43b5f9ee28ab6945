//! A meeting: what a creator may ask for ([`CreateMeeting`]), its settings with their secure
//! defaults, and the stored state the API shows.

use chrono::{DateTime, Utc};
use common::display_name::DisplayName;
use common::meeting_code::MeetingCode;
use common::settings::MeetingSettings;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::idempotency::{IdempotencyRecord, RequestHash};
use crate::domain::secret::JoinTokenSecret;
pub use crate::domain::validation::ValidationError;

/// Fewest participants a meeting may be limited to.
pub const MIN_PARTICIPANTS: i32 = 2;

/// How far in the past a start time may lie: clients' clocks drift, and "now" written by a
/// client arrives a little late.
const SCHEDULED_START_PAST_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// How far ahead a meeting may be scheduled. A scheduled meeting holds one of the org's
/// concurrent-meeting slots until it expires, so a far-future one would hold it for years.
const SCHEDULED_START_HORIZON: chrono::TimeDelta = chrono::TimeDelta::days(366);

/// Checks a requested start time against `now` (the server's clock).
pub fn check_scheduled_start(
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ValidationError> {
    if start < now - SCHEDULED_START_PAST_TOLERANCE {
        return Err(ValidationError::ScheduledStartInPast);
    }
    if start > now + SCHEDULED_START_HORIZON {
        return Err(ValidationError::ScheduledStartTooFar);
    }
    Ok(start)
}

/// A requested participant limit. Its upper bound, the org's `max_participants_per_meeting`,
/// is checked by the create statement against the org row itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxParticipants(i32);

impl MaxParticipants {
    pub fn parse(n: i32) -> Result<Self, ValidationError> {
        if n < MIN_PARTICIPANTS {
            return Err(ValidationError::MaxParticipantsTooSmall);
        }
        Ok(Self(n))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// Settings a request asks to change; `None` keeps the current (or default) value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub waiting_room_enabled: Option<bool>,
    pub enable_transcription: Option<bool>,
    pub enable_e2e_encryption: Option<bool>,
    pub require_auth: Option<bool>,
    pub recording_enabled: Option<bool>,
    pub allow_guests: Option<bool>,
    pub allow_external_participants: Option<bool>,
}

/// Refuses settings that contradict each other: guests (people without an account, DESIGN
/// §12) cannot be allowed in a meeting that requires everyone to sign in.
pub fn check_settings(settings: &MeetingSettings) -> Result<(), ValidationError> {
    if settings.allow_guests && settings.require_auth {
        return Err(ValidationError::GuestsNeedNoAuth);
    }
    Ok(())
}

/// Whether people without an account may ask to join (DESIGN §12).
pub fn admits_guests(settings: &MeetingSettings) -> bool {
    settings.allow_guests && !settings.require_auth
}

impl SettingsChange {
    /// `settings` with the changes this asks for.
    pub fn apply_to(self, settings: MeetingSettings) -> MeetingSettings {
        let change = self;
        let current = settings;
        MeetingSettings {
            waiting_room_enabled: change
                .waiting_room_enabled
                .unwrap_or(current.waiting_room_enabled),
            enable_transcription: change
                .enable_transcription
                .unwrap_or(current.enable_transcription),
            enable_e2e_encryption: change
                .enable_e2e_encryption
                .unwrap_or(current.enable_e2e_encryption),
            require_auth: change.require_auth.unwrap_or(current.require_auth),
            recording_enabled: change
                .recording_enabled
                .unwrap_or(current.recording_enabled),
            allow_guests: change.allow_guests.unwrap_or(current.allow_guests),
            allow_external_participants: change
                .allow_external_participants
                .unwrap_or(current.allow_external_participants),
        }
    }
}

/// Where a meeting is in its life. `scheduled` and `active` meetings are "live" and count
/// against the org's concurrent-meeting limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeetingStatus {
    Scheduled,
    Active,
    Ended,
}

impl MeetingStatus {
    pub fn is_ended(self) -> bool {
        self == MeetingStatus::Ended
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MeetingStatus::Scheduled => "scheduled",
            MeetingStatus::Active => "active",
            MeetingStatus::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(MeetingStatus::Scheduled),
            "active" => Some(MeetingStatus::Active),
            "ended" => Some(MeetingStatus::Ended),
            _ => None,
        }
    }
}

/// A validated create command: everything the creator chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateMeeting {
    pub display_name: DisplayName,
    /// `None` means the default: `min(100, org limit)`, decided by the create statement.
    pub max_participants: Option<MaxParticipants>,
    pub scheduled_start_time: Option<DateTime<Utc>>,
    pub settings: MeetingSettings,
}

/// Everything the create statement stores: the request plus what the server decides.
#[derive(Debug)]
pub struct NewMeeting {
    pub id: Uuid,
    pub org_id: Uuid,
    pub host_id: Uuid,
    pub create: CreateMeeting,
    pub code: MeetingCode,
    pub join_token_secret: JoinTokenSecret,
    pub idempotency: Option<IdempotencyRecord>,
}

/// A stored meeting, without its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meeting {
    pub id: Uuid,
    pub org_id: Uuid,
    /// The current host; `None` while nobody hosts (DESIGN §12: the host's seat ended and no
    /// member of the org was left to take the role).
    pub host_id: Option<Uuid>,
    /// Who created the meeting; never changes. They take the host role back by joining while
    /// nobody hosts.
    pub creator_id: Uuid,
    /// The number of the last change of host recorded (the room's `host_seq`).
    pub host_seq: i64,
    pub code: MeetingCode,
    pub display_name: String,
    pub status: MeetingStatus,
    pub max_participants: i32,
    pub settings: MeetingSettings,
    /// Raised by one with every change of `settings` or `max_participants`; the room keeps the
    /// newest version it was given (`use_cases::config`).
    pub settings_version: i64,
    pub scheduled_start_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl Meeting {
    /// Whether `user_id` hosts the meeting now (as PostgreSQL last recorded it).
    pub fn hosted_by(&self, user_id: Uuid) -> bool {
        self.host_id == Some(user_id)
    }
}

impl CreateMeeting {
    /// The request's [`RequestHash`] (for `Idempotency-Key`): the operation and every field,
    /// each length-prefixed or tagged so that no two different requests share an encoding.
    pub fn request_hash(&self) -> RequestHash {
        let mut hasher = Sha256::new();
        hasher.update(b"convene.create_meeting.v1\0POST /api/v1/meetings\0");
        let name = self.display_name.as_str().as_bytes();
        hasher.update((name.len() as u64).to_be_bytes());
        hasher.update(name);
        match self.max_participants {
            Some(n) => {
                hasher.update([1]);
                hasher.update(n.get().to_be_bytes());
            }
            None => hasher.update([0]),
        }
        match self.scheduled_start_time {
            Some(at) => {
                hasher.update([1]);
                hasher.update(at.timestamp().to_be_bytes());
                hasher.update(at.timestamp_subsec_nanos().to_be_bytes());
            }
            None => hasher.update([0]),
        }
        let s = self.settings;
        hasher.update([
            u8::from(s.waiting_room_enabled),
            u8::from(s.enable_transcription),
            u8::from(s.enable_e2e_encryption),
            u8::from(s.require_auth),
            u8::from(s.recording_enabled),
            u8::from(s.allow_guests),
            u8::from(s.allow_external_participants),
        ]);
        RequestHash::new(hasher.finalize().into())
    }
}

/// The fields of a meeting that an admission changes (its first seat starts it), as the
/// admission left them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeetingStart {
    pub status: MeetingStatus,
    pub started_at: Option<DateTime<Utc>>,
}

impl Meeting {
    /// The meeting as an admission of its seats left it.
    pub fn admitted(self, start: MeetingStart) -> Meeting {
        Meeting {
            status: start.status,
            started_at: start.started_at,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_start_times_must_lie_between_a_few_minutes_ago_and_a_year_ahead() {
        let now = Utc::now();
        let minute = chrono::TimeDelta::minutes(1);
        assert!(check_scheduled_start(now - minute * 4, now).is_ok());
        assert!(check_scheduled_start(now + chrono::TimeDelta::days(365), now).is_ok());
        assert_eq!(
            check_scheduled_start(now - minute * 6, now),
            Err(ValidationError::ScheduledStartInPast)
        );
        assert_eq!(
            check_scheduled_start(now + chrono::TimeDelta::days(367), now),
            Err(ValidationError::ScheduledStartTooFar)
        );
    }

    #[test]
    fn max_participants_must_be_at_least_two() {
        assert_eq!(MaxParticipants::parse(2).unwrap().get(), 2);
        assert_eq!(MaxParticipants::parse(10_000).unwrap().get(), 10_000);
        for n in [1, 0, -5, i32::MIN] {
            assert_eq!(
                MaxParticipants::parse(n),
                Err(ValidationError::MaxParticipantsTooSmall)
            );
        }
    }

    #[test]
    fn a_settings_change_touches_only_what_it_names() {
        let change = SettingsChange {
            recording_enabled: Some(true),
            waiting_room_enabled: Some(false),
            ..SettingsChange::default()
        };
        let settings = change.apply_to(MeetingSettings::default());
        assert_eq!(
            settings,
            MeetingSettings {
                recording_enabled: true,
                waiting_room_enabled: false,
                ..MeetingSettings::default()
            }
        );
        assert_eq!(
            SettingsChange::default().apply_to(MeetingSettings::default()),
            MeetingSettings::default()
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in [
            MeetingStatus::Scheduled,
            MeetingStatus::Active,
            MeetingStatus::Ended,
        ] {
            assert_eq!(MeetingStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(MeetingStatus::parse("pending"), None);
    }
}
