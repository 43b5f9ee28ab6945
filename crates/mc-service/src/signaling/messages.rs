//! Every message the server sends on the signaling WebSocket (DESIGN §4), as one type:
//! [`ServerMessage`]. The room's events are [`RoomMessage`]s, published by the room scripts
//! and passed on as they are; the rest ([`SocketMessage`]) one socket sends on its own. Nothing
//! else writes server JSON: `docs/signaling.schema.json` and the page's types are generated from
//! these types (`schema.rs`).

use axum::extract::ws::Utf8Bytes;
use common::error::ErrorCode;
use common::meeting_code::MeetingCode;
use common::settings::MeetingSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::room::events::RoomMessage;
use crate::room::{
    HardwareReady, LobbyEntry, Participant, ParticipantStatus, Role, RoomState, format_timestamp,
};

/// A message from the server to one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ServerMessage {
    // A change of the room, as every concerned socket of the room receives it. (Plain
    // comments: a description beside the `$ref` would make the TypeScript generator inline
    // the referenced union rather than name it.)
    Room(RoomMessage),
    // A message of one socket alone.
    Socket(SocketMessage),
}

/// A message one socket sends on its own, not published by the room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum SocketMessage {
    /// To a seated user, first: the room as it is now.
    #[serde(rename = "welcome")]
    #[schemars(title = "Welcome")]
    Welcome {
        #[serde(flatten)]
        welcome: Welcome,
    },
    /// To a waiting user, first: they wait in the lobby until the host decides.
    #[serde(rename = "lobby.waiting")]
    #[schemars(title = "LobbyWaiting")]
    LobbyWaiting,
    /// The answer to `ping`.
    #[serde(rename = "pong")]
    #[schemars(title = "Pong")]
    Pong,
    /// A message the server could not act on; the connection stays open.
    #[serde(rename = "error")]
    #[schemars(title = "ErrorMessage")]
    Error {
        /// A shared error code (`BAD_REQUEST`).
        code: String,
        message: String,
    },
}

/// The room as a seated user first sees it (the fields of `welcome`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "WelcomeFields")]
pub struct Welcome {
    pub you: You,
    pub meeting: WelcomeMeeting,
    /// Every seated participant, the user among them.
    pub participants: Vec<ParticipantView>,
    /// The user id of the active speaker, or null.
    pub active_speaker: Option<String>,
    /// The lobby, oldest first: only the host is sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Vec<LobbyEntryView>")]
    pub lobby: Option<Vec<LobbyEntryView>>,
}

/// The user the `welcome` is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct You {
    pub user_id: String,
    pub role: Role,
    /// Always `connected`: the user's seat is this socket's now.
    pub status: ParticipantStatus,
}

/// The meeting as the room holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WelcomeMeeting {
    pub meeting_code: String,
    pub settings: MeetingSettings,
    pub max_participants: u32,
}

/// One seated participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParticipantView {
    pub user_id: String,
    pub display_name: String,
    pub role: Role,
    pub status: ParticipantStatus,
    /// A BCP 47 tag, or null before the user set one.
    pub language: Option<String>,
    /// The pre-join device test's result, or null before the user sent one.
    pub hardware_ready: Option<HardwareReady>,
    /// When the user was seated (RFC 3339, UTC, milliseconds).
    pub joined_at: String,
    /// Present (true) only for a person without an account (DESIGN §12).
    #[serde(default, skip_serializing_if = "crate::room::events::is_false")]
    pub guest: bool,
}

pub use crate::room::events::LobbyEntryView;

impl From<&Participant> for ParticipantView {
    fn from(p: &Participant) -> Self {
        Self {
            user_id: p.user_id.clone(),
            display_name: p.display_name.clone(),
            role: p.role,
            status: p.status,
            language: p.language.clone(),
            hardware_ready: p.hardware_ready,
            joined_at: format_timestamp(p.joined_at),
            guest: p.guest,
        }
    }
}

impl From<&LobbyEntry> for LobbyEntryView {
    fn from(entry: &LobbyEntry) -> Self {
        Self {
            user_id: entry.user_id.clone(),
            display_name: entry.display_name.clone(),
            waiting_since: format_timestamp(entry.waiting_since),
            guest: entry.guest,
        }
    }
}

impl Welcome {
    /// The `welcome` of a seated user: the room as of `state`, with the user's own seat as it
    /// is now (`me`, connected). The host (by the token or by the seat) also gets the lobby.
    pub fn new(code: &MeetingCode, state: &RoomState, me: &Participant, is_host: bool) -> Self {
        let participants = state
            .participants
            .iter()
            .map(|p| {
                if p.user_id == me.user_id {
                    ParticipantView::from(me)
                } else {
                    ParticipantView::from(p)
                }
            })
            .collect();
        let lobby = (is_host || me.role == Role::Host)
            .then(|| state.lobby.iter().map(LobbyEntryView::from).collect());
        Self {
            you: You {
                user_id: me.user_id.clone(),
                role: me.role,
                status: ParticipantStatus::Connected,
            },
            meeting: WelcomeMeeting {
                meeting_code: code.to_string(),
                settings: state.settings,
                max_participants: state.max_participants,
            },
            participants,
            active_speaker: state.active_speaker.clone(),
            lobby,
        }
    }
}

impl ServerMessage {
    pub fn welcome(welcome: Welcome) -> Self {
        ServerMessage::Socket(SocketMessage::Welcome { welcome })
    }

    pub fn lobby_waiting() -> Self {
        ServerMessage::Socket(SocketMessage::LobbyWaiting)
    }

    pub fn pong() -> Self {
        ServerMessage::Socket(SocketMessage::Pong)
    }

    pub fn error(code: ErrorCode, message: &str) -> Self {
        ServerMessage::Socket(SocketMessage::Error {
            code: code.as_str().to_owned(),
            message: message.to_owned(),
        })
    }

    pub fn admitted() -> Self {
        ServerMessage::Room(RoomMessage::Admitted)
    }

    pub fn rejected(reason: &str) -> Self {
        ServerMessage::Room(RoomMessage::Rejected {
            reason: reason.to_owned(),
        })
    }

    pub fn removed(reason: &str) -> Self {
        ServerMessage::Room(RoomMessage::Removed {
            reason: reason.to_owned(),
        })
    }

    /// The `type`, also the message's metric label.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMessage::Room(message) => message.type_name(),
            ServerMessage::Socket(SocketMessage::Welcome { .. }) => "welcome",
            ServerMessage::Socket(SocketMessage::LobbyWaiting) => "lobby.waiting",
            ServerMessage::Socket(SocketMessage::Pong) => "pong",
            ServerMessage::Socket(SocketMessage::Error { .. }) => "error",
        }
    }

    /// The text frame.
    pub fn to_text(&self) -> Utf8Bytes {
        // Cannot fail: strings, numbers, booleans and structs only, no map with other keys.
        serde_json::to_string(self)
            .unwrap_or_else(|error| {
                tracing::error!(%error, kind = self.type_name(), "a server message did not serialize");
                String::new()
            })
            .into()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    fn seat(user_id: &str, role: Role, status: ParticipantStatus) -> Participant {
        Participant {
            user_id: user_id.into(),
            status,
            language: None,
            hardware_ready: None,
            display_name: format!("name of {user_id}"),
            role,
            joined_at: at(1_000),
            guest: false,
            member: true,
            from_lobby: false,
            connection: None,
            seat: 1,
        }
    }

    pub(crate) fn state() -> RoomState {
        RoomState {
            meeting_id: "m".into(),
            host_id: "h".into(),
            creator_id: "h".into(),
            host_seq: 0,
            owner: "mc-1".into(),
            fencing_token: crate::room::FencingToken(1),
            max_participants: 5,
            settings: MeetingSettings::default(),
            participants: vec![
                seat("h", Role::Host, ParticipantStatus::Connected),
                seat("g", Role::Guest, ParticipantStatus::Admitted),
            ],
            lobby: vec![LobbyEntry {
                user_id: "w".into(),
                display_name: "Wanda".into(),
                waiting_since: at(2_000),
                guest: false,
            }],
            active_speaker: Some("h".into()),
            rejected: Default::default(),
            removed: Default::default(),
            seq: 7,
            last_seat: 2,
            settings_version: 1,
        }
    }

    fn code() -> MeetingCode {
        MeetingCode::parse("Ab3dE5fG7hJ9").unwrap()
    }

    /// One message of every kind the server sends.
    pub(crate) fn every_server_message() -> Vec<ServerMessage> {
        let state = state();
        let host = Welcome::new(&code(), &state, &state.participants[0], true);
        let guest = Welcome::new(&code(), &state, &state.participants[1], false);
        let room = [
            RoomMessage::ParticipantJoined {
                user_id: "g".into(),
                display_name: "Gus".into(),
                role: Role::Guest,
                guest: false,
            },
            RoomMessage::ParticipantLeft {
                user_id: "g".into(),
                reason: "connection_lost".into(),
            },
            RoomMessage::ParticipantUpdated {
                user_id: "g".into(),
                status: Some(ParticipantStatus::Reconnecting),
                language: Some(Some("pt-BR".into())),
                hardware_ready: Some(Some(HardwareReady {
                    audio_ready: true,
                    video_ready: false,
                })),
                role: None,
            },
            RoomMessage::ParticipantUpdated {
                user_id: "g".into(),
                status: None,
                language: None,
                hardware_ready: None,
                role: Some(Role::Host),
            },
            RoomMessage::HostGranted {
                lobby: vec![LobbyEntryView {
                    user_id: "w".into(),
                    display_name: "Wanda".into(),
                    waiting_since: "2026-12-06T10:00:00.000Z".into(),
                    guest: true,
                }],
            },
            RoomMessage::HostGranted { lobby: vec![] },
            RoomMessage::LobbyNoHost,
            RoomMessage::ParticipantUpdated {
                user_id: "g".into(),
                status: None,
                language: Some(None),
                hardware_ready: None,
                role: None,
            },
            RoomMessage::LobbyJoined {
                user_id: "w".into(),
                display_name: "Wanda".into(),
                guest: false,
            },
            RoomMessage::LobbyLeft {
                user_id: "w".into(),
                reason: "admitted".into(),
            },
            RoomMessage::Admitted,
            RoomMessage::Rejected {
                reason: "rejected".into(),
            },
            RoomMessage::Removed {
                reason: "removed_by_host".into(),
            },
            RoomMessage::ActiveSpeaker {
                user_id: None,
                previous_user_id: Some("h".into()),
            },
            RoomMessage::SettingsUpdated {
                settings: MeetingSettings::default(),
                max_participants: 9,
            },
            RoomMessage::MeetingEnded {
                reason: "ended_by_host".into(),
            },
        ];
        let mut all: Vec<ServerMessage> = room.into_iter().map(ServerMessage::Room).collect();
        all.extend([
            ServerMessage::welcome(host),
            ServerMessage::welcome(guest),
            ServerMessage::lobby_waiting(),
            ServerMessage::pong(),
            ServerMessage::error(ErrorCode::BadRequest, "say \"why\"\n"),
        ]);
        all
    }

    /// The largest `welcome` a room can give, 10,000 seats with the longest ids, names and
    /// language tags, fits what one socket may write at once.
    #[test]
    fn the_largest_rooms_welcome_fits_one_sockets_write_bound() {
        use crate::room::{MAX_DISPLAY_NAME_BYTES, MAX_ID_BYTES, MAX_LANGUAGE_BYTES};
        let mut state = state();
        let name = "\u{1F600}".repeat(MAX_DISPLAY_NAME_BYTES / 4);
        state.max_participants = 10_000;
        state.participants = (0..10_000)
            .map(|i| Participant {
                user_id: format!("{i:0>width$}", width = MAX_ID_BYTES),
                display_name: name.clone(),
                language: Some("a".repeat(MAX_LANGUAGE_BYTES)),
                ..seat("x", Role::Guest, ParticipantStatus::Connected)
            })
            .collect();
        let me = state.participants[0].clone();
        let text = ServerMessage::welcome(Welcome::new(&code(), &state, &me, true)).to_text();
        assert!(
            text.len() > 10 * 1024 * 1024
                && text.len() <= crate::signaling::protocol::MAX_WRITE_BYTES,
            "{} bytes",
            text.len()
        );
    }

    #[test]
    fn every_server_message_round_trips_and_carries_its_type() {
        for message in every_server_message() {
            let text = message.to_text();
            let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            assert_eq!(value["type"], message.type_name(), "{text}");
            let back: ServerMessage = serde_json::from_str(text.as_str()).unwrap();
            assert_eq!(back, message, "{text}");
        }
    }

    #[test]
    fn the_messages_a_socket_writes_keep_their_wire_form() {
        let as_value = |m: ServerMessage| -> serde_json::Value {
            serde_json::from_str(m.to_text().as_str()).unwrap()
        };
        assert_eq!(
            as_value(ServerMessage::pong()),
            serde_json::json!({"type": "pong"})
        );
        assert_eq!(
            as_value(ServerMessage::lobby_waiting()),
            serde_json::json!({"type": "lobby.waiting"})
        );
        assert_eq!(
            as_value(ServerMessage::admitted()),
            serde_json::json!({"type": "admitted"})
        );
        assert_eq!(
            as_value(ServerMessage::rejected("rejected")),
            serde_json::json!({"type": "rejected", "reason": "rejected"})
        );
        assert_eq!(
            as_value(ServerMessage::error(ErrorCode::BadRequest, "no")),
            serde_json::json!({"type": "error", "code": "BAD_REQUEST", "message": "no"})
        );
    }

    #[test]
    fn the_welcome_shows_the_room_with_the_users_own_seat_as_it_is_now() {
        let state = state();
        let mut me = state.participants[1].clone();
        me.status = ParticipantStatus::Connected;
        me.language = Some("de".into());
        let welcome = ServerMessage::welcome(Welcome::new(&code(), &state, &me, false));
        let value: serde_json::Value = serde_json::from_str(welcome.to_text().as_str()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "type": "welcome",
                "you": {"user_id": "g", "role": "guest", "status": "connected"},
                "meeting": {
                    "meeting_code": "Ab3dE5fG7hJ9",
                    "settings": serde_json::to_value(MeetingSettings::default()).unwrap(),
                    "max_participants": 5,
                },
                "participants": [
                    {"user_id": "h", "display_name": "name of h", "role": "host",
                     "status": "connected", "language": null, "hardware_ready": null,
                     "joined_at": "1970-01-01T00:00:01.000Z"},
                    {"user_id": "g", "display_name": "name of g", "role": "guest",
                     "status": "connected", "language": "de", "hardware_ready": null,
                     "joined_at": "1970-01-01T00:00:01.000Z"},
                ],
                "active_speaker": "h",
            })
        );
    }

    #[test]
    fn only_the_host_is_shown_the_lobby() {
        let state = state();
        let guest = Welcome::new(&code(), &state, &state.participants[1], false);
        assert_eq!(guest.lobby, None);
        // By the token's role, or by the seat's.
        let by_token = Welcome::new(&code(), &state, &state.participants[1], true);
        let by_seat = Welcome::new(&code(), &state, &state.participants[0], false);
        let expected = Some(vec![LobbyEntryView {
            user_id: "w".into(),
            display_name: "Wanda".into(),
            waiting_since: "1970-01-01T00:00:02.000Z".into(),
            guest: false,
        }]);
        assert_eq!(by_token.lobby, expected);
        assert_eq!(by_seat.lobby, expected);
    }
}
