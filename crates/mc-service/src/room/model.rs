//! The plain types of a live room: what the store takes and what it answers.
//!
//! These are the shapes of the JSON values in Redis as well (docs/redis.md), so a change here is
//! a change of the stored format: keep old fields readable while an older MC may still run.

use chrono::{DateTime, SecondsFormat, Utc};
use common::meeting_code::MeetingCode;
use common::settings::MeetingSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The number GC gives each assignment of a meeting; a later assignment has a larger one.
/// Redis keeps the newest, and every write carrying another one is refused, so an MC that lost
/// its meeting (it stalled and GC reassigned it) can no longer change the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(pub u64);

/// A room as one MC owns it: the code, and the token the MC was assigned the room with.
/// Every write of the store takes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRoom {
    pub code: MeetingCode,
    pub token: FencingToken,
}

impl OwnedRoom {
    pub fn new(code: MeetingCode, token: FencingToken) -> Self {
        Self { code, token }
    }
}

/// What GC tells MC about a meeting when it assigns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomMeta {
    pub meeting_id: String,
    /// The host GC has recorded; empty while nobody hosts (DESIGN §12). Only a new room takes
    /// it: a room that exists already knows its host.
    pub host_id: String,
    /// The meeting's creator, who takes the host role back when they join while nobody hosts;
    /// empty: the host.
    pub creator_id: String,
    /// The number of GC's last recorded change of host, which a new room numbers its changes
    /// above (0: none).
    pub host_seq: u64,
    pub max_participants: u32,
    pub settings: MeetingSettings,
    /// The version of `settings` and `max_participants` in GC's database; 0 when unknown (the
    /// room then takes them whatever it holds).
    pub settings_version: u64,
}

/// The most guests (people without an account, DESIGN §12) a lobby may hold, which a guest's
/// join carries: a guest finding that many waiting is refused, not put in the lobby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxGuestsWaiting(pub u32);

/// A participant's role in the meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    Guest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Guest => "guest",
        }
    }
}

/// Where a seated participant's connection stands. `Admitted`: seated, no live socket yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantStatus {
    Admitted,
    Connected,
    Reconnecting,
}

/// The result of a participant's pre-join device test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HardwareReady {
    pub audio_ready: bool,
    pub video_ready: bool,
}

/// One seated participant, as stored in `room:{code}:participants`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Participant {
    /// The hash field, not part of the stored JSON.
    #[serde(skip)]
    pub user_id: String,
    pub status: ParticipantStatus,
    pub language: Option<String>,
    pub hardware_ready: Option<HardwareReady>,
    pub display_name: String,
    pub role: Role,
    #[serde(with = "timestamp")]
    pub joined_at: DateTime<Utc>,
    /// Seated from the lobby by the host (their first socket is told `admitted`).
    #[serde(default)]
    pub from_lobby: bool,
    /// The id of the signaling socket that last claimed this seat; `None` before the first.
    #[serde(default)]
    pub connection: Option<String>,
    /// The room's number for this seat (docs/redis.md, "Seat numbers"); 0 for a seat stored
    /// before seats were numbered, which gets its number from the next script that reports it.
    #[serde(default)]
    pub seat: u64,
    /// A person without an account (DESIGN §12).
    #[serde(default)]
    pub guest: bool,
    /// A member of the meeting's org, who may be made the host (never shown to clients).
    #[serde(default)]
    pub member: bool,
}

/// One person in the lobby, as stored in `room:{code}:lobby_details`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LobbyEntry {
    #[serde(skip)]
    pub user_id: String,
    pub display_name: String,
    #[serde(with = "timestamp")]
    pub waiting_since: DateTime<Utc>,
    /// A person without an account (DESIGN §12): only the host lets them in.
    #[serde(default)]
    pub guest: bool,
}

/// A consistent snapshot of a room, read in one script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomState {
    pub meeting_id: String,
    /// The room's host; empty while nobody hosts.
    pub host_id: String,
    /// The meeting's creator (the host, for a room assigned before creators were stored).
    pub creator_id: String,
    /// The number of the room's last change of host (0: none).
    pub host_seq: u64,
    pub owner: String,
    pub fencing_token: FencingToken,
    pub max_participants: u32,
    pub settings: MeetingSettings,
    /// Sorted by `joined_at`, then user id.
    pub participants: Vec<Participant>,
    /// Sorted by `waiting_since`, then user id: the order `admit_all` admits in.
    pub lobby: Vec<LobbyEntry>,
    pub active_speaker: Option<String>,
    /// Users the host rejected (until they join again), with the reason they were given.
    pub rejected: std::collections::BTreeMap<String, String>,
    /// Users the host removed (until the meeting ends), with the reason they were given.
    pub removed: std::collections::BTreeMap<String, String>,
    /// The number of the last event published for the room: events up to it are already in
    /// this snapshot.
    pub seq: u64,
    /// The number of the last seat the room gave (0 before the first).
    pub last_seat: u64,
    /// The version of the settings the room holds (0: never given one).
    pub settings_version: u64,
}

impl RoomState {
    pub fn participant_count(&self) -> u32 {
        u32::try_from(self.participants.len()).unwrap_or(u32::MAX)
    }
}

/// Fields of a participant to change; `None` leaves a field as it is. `language`,
/// `hardware_ready` and `connection` take `Some(None)` to clear them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParticipantUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ParticipantStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware_ready: Option<Option<HardwareReady>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<Option<String>>,
}

impl ParticipantUpdate {
    /// Takes the fields `later` changes, keeping the others: two updates as one.
    pub fn merge(&mut self, later: ParticipantUpdate) {
        if later.status.is_some() {
            self.status = later.status;
        }
        if later.language.is_some() {
            self.language = later.language;
        }
        if later.hardware_ready.is_some() {
            self.hardware_ready = later.hardware_ready;
        }
        if later.connection.is_some() {
            self.connection = later.connection;
        }
    }
}

/// Times in Redis are RFC 3339 in UTC with exactly three fraction digits
/// (`2026-12-01T10:00:00.123Z`): readable in `redis-cli`, ordered the same as text and as time
/// (scripts sort the lobby by comparing them), and never numbers, which Redis' Lua JSON
/// encoder would print with only 14 significant digits.
pub(crate) fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

mod timestamp {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_three_fraction_digits_and_sort_as_text() {
        let early = DateTime::from_timestamp_millis(1_000).unwrap();
        let late = DateTime::from_timestamp_millis(1_790_000_000_007).unwrap();
        assert_eq!(format_timestamp(early), "1970-01-01T00:00:01.000Z");
        assert_eq!(format_timestamp(late), "2026-09-21T14:13:20.007Z");
        assert!(format_timestamp(early) < format_timestamp(late));
    }

    #[test]
    fn a_merged_update_takes_the_later_fields_and_keeps_the_others() {
        let mut update = ParticipantUpdate {
            language: Some(Some("en".into())),
            hardware_ready: Some(None),
            ..ParticipantUpdate::default()
        };
        update.merge(ParticipantUpdate {
            language: Some(Some("de".into())),
            status: Some(ParticipantStatus::Connected),
            ..ParticipantUpdate::default()
        });
        assert_eq!(
            update,
            ParticipantUpdate {
                status: Some(ParticipantStatus::Connected),
                language: Some(Some("de".into())),
                hardware_ready: Some(None),
                connection: None,
            }
        );
    }

    #[test]
    fn an_update_serialises_only_the_fields_it_changes() {
        let update = ParticipantUpdate {
            language: Some(None),
            ..ParticipantUpdate::default()
        };
        assert_eq!(
            serde_json::to_string(&update).unwrap(),
            r#"{"language":null}"#
        );
    }
}
