//! The room events the Lua scripts publish (`lua/prelude.lua`, `publish`), as every MC's
//! subscriber receives them: `<seq> <audience> <subject length> <subject><event JSON>`.
//!
//! [`RoomMessage`] is the one definition of the event JSON: the scripts build it, clients
//! receive it unchanged, and the signaling schema (`docs/signaling.schema.json`) is generated
//! from this type. A test (`tests/room/events.rs`) runs every publish site of the scripts and
//! holds each message equal to its typed reading, field for field.
//!
//! The event JSON itself is passed to sockets byte for byte (one shared buffer for every socket
//! of the room); the typed reading is made once per event and MC, and is what sockets act on.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use common::settings::MeetingSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::model::{HardwareReady, ParticipantStatus, Role};

/// Who an event is for. An event goes to every socket that matches any of the flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audience {
    /// Every seated participant.
    pub seated: bool,
    /// Everyone waiting in the lobby.
    pub waiting: bool,
    /// The meeting's host.
    pub host: bool,
    /// The event's subject user.
    pub subject: bool,
}

/// One person waiting in the lobby, as the host sees them (`welcome`'s `lobby`,
/// `host.granted`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LobbyEntryView {
    pub user_id: String,
    pub display_name: String,
    /// Since when (RFC 3339, UTC, milliseconds).
    pub waiting_since: String,
    /// Present (true) only for a person without an account (DESIGN §12).
    #[serde(default, skip_serializing_if = "is_false")]
    pub guest: bool,
}

/// A change of a room, as the room scripts publish it and clients receive it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum RoomMessage {
    /// To the room: `user_id` was seated.
    #[serde(rename = "participant.joined")]
    #[schemars(title = "ParticipantJoined")]
    ParticipantJoined {
        user_id: String,
        display_name: String,
        role: Role,
        /// Present (true) only for a person without an account (DESIGN §12).
        #[serde(default, skip_serializing_if = "is_false")]
        guest: bool,
    },
    /// To the room and the user: `user_id` lost their seat (`left`, `connection_lost`, …).
    #[serde(rename = "participant.left")]
    #[schemars(title = "ParticipantLeft")]
    ParticipantLeft { user_id: String, reason: String },
    /// To the room: fields of `user_id`'s seat changed; only the changed fields are present.
    #[serde(rename = "participant.updated")]
    #[schemars(title = "ParticipantUpdated")]
    ParticipantUpdated {
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "ParticipantStatus")]
        status: Option<ParticipantStatus>,
        /// A BCP 47 tag, or null when cleared.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        #[schemars(with = "Option<String>")]
        language: Option<Option<String>>,
        /// The pre-join device test's result, or null when cleared.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        #[schemars(with = "Option<HardwareReady>")]
        hardware_ready: Option<Option<HardwareReady>>,
        /// The user's new role: the host handed the meeting over, or the role passed on when
        /// the host's seat ended (DESIGN §12).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Role")]
        role: Option<Role>,
    },
    /// To the user: they host the meeting now (a hand-over or a succession, DESIGN §12), with
    /// the lobby as it is, oldest first; host-only events follow.
    #[serde(rename = "host.granted")]
    #[schemars(title = "HostGranted")]
    HostGranted { lobby: Vec<LobbyEntryView> },
    /// To the lobby: nobody hosts the meeting, so nobody can let anyone in; the meeting's
    /// creator takes the role back by joining, else the meeting ends when it has been empty
    /// long enough.
    #[serde(rename = "lobby.no_host")]
    #[schemars(title = "LobbyNoHost")]
    LobbyNoHost,
    /// To the host: `user_id` is waiting in the lobby.
    #[serde(rename = "lobby.joined")]
    #[schemars(title = "LobbyJoined")]
    LobbyJoined {
        user_id: String,
        display_name: String,
        /// Present (true) only for a person without an account (DESIGN §12).
        #[serde(default, skip_serializing_if = "is_false")]
        guest: bool,
    },
    /// To the host and the user: `user_id` is no longer waiting (`admitted`, `rejected`,
    /// `left`, …).
    #[serde(rename = "lobby.left")]
    #[schemars(title = "LobbyLeft")]
    LobbyLeft { user_id: String, reason: String },
    /// To the waiting user: the host let them in; `welcome` follows.
    #[serde(rename = "admitted")]
    #[schemars(title = "Admitted")]
    Admitted,
    /// To the waiting user: the host turned them away; the socket closes (4403).
    #[serde(rename = "rejected")]
    #[schemars(title = "Rejected")]
    Rejected { reason: String },
    /// To the user: the host took them out of the meeting (seated or waiting); the socket
    /// closes (4403), and they may not join again until the meeting ends.
    #[serde(rename = "removed")]
    #[schemars(title = "Removed")]
    Removed { reason: String },
    /// To the room: the active speaker changed (null: nobody speaks).
    #[serde(rename = "active_speaker")]
    #[schemars(title = "ActiveSpeaker")]
    ActiveSpeaker {
        user_id: Option<String>,
        previous_user_id: Option<String>,
    },
    /// To the room and the lobby: the host changed the settings or the capacity.
    #[serde(rename = "settings.updated")]
    #[schemars(title = "SettingsUpdated")]
    SettingsUpdated {
        settings: MeetingSettings,
        max_participants: u32,
    },
    /// To the room and the lobby: the meeting ended; the socket closes (1000).
    #[serde(rename = "meeting.ended")]
    #[schemars(title = "MeetingEnded")]
    MeetingEnded { reason: String },
}

impl RoomMessage {
    /// The `type`, also the message's metric label.
    pub fn type_name(&self) -> &'static str {
        match self {
            RoomMessage::ParticipantJoined { .. } => "participant.joined",
            RoomMessage::ParticipantLeft { .. } => "participant.left",
            RoomMessage::ParticipantUpdated { .. } => "participant.updated",
            RoomMessage::HostGranted { .. } => "host.granted",
            RoomMessage::LobbyNoHost => "lobby.no_host",
            RoomMessage::LobbyJoined { .. } => "lobby.joined",
            RoomMessage::LobbyLeft { .. } => "lobby.left",
            RoomMessage::Admitted => "admitted",
            RoomMessage::Rejected { .. } => "rejected",
            RoomMessage::Removed { .. } => "removed",
            RoomMessage::ActiveSpeaker { .. } => "active_speaker",
            RoomMessage::SettingsUpdated { .. } => "settings.updated",
            RoomMessage::MeetingEnded { .. } => "meeting.ended",
        }
    }
}

/// A field that is present, null or not: absent stays `None` (`#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Leaves a false flag out of the JSON: the scripts write `guest` only when it is true.
pub(crate) fn is_false(flag: &bool) -> bool {
    !*flag
}

/// One event of one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEvent {
    pub seq: u64,
    pub audience: Audience,
    /// A user id, or empty.
    pub subject: String,
    /// The event, read.
    pub message: RoomMessage,
    /// The event as clients receive it: the script's JSON, unchanged.
    pub json: Utf8Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed room event: {0}")]
pub struct MalformedEvent(&'static str);

impl RoomEvent {
    pub fn parse(payload: Bytes) -> Result<Self, MalformedEvent> {
        let (seq, rest) = word(&payload, 0).ok_or(MalformedEvent("seq"))?;
        let (audience, rest) = word(&payload, rest).ok_or(MalformedEvent("audience"))?;
        let (length, rest) = word(&payload, rest).ok_or(MalformedEvent("subject length"))?;
        let seq: u64 = ascii(seq)?.parse().map_err(|_| MalformedEvent("seq"))?;
        let length: usize = ascii(length)?
            .parse()
            .map_err(|_| MalformedEvent("subject length"))?;
        let end = rest
            .checked_add(length)
            .filter(|end| *end <= payload.len())
            .ok_or(MalformedEvent("subject length"))?;
        let subject = std::str::from_utf8(&payload[rest..end])
            .map_err(|_| MalformedEvent("subject"))?
            .to_owned();
        let mut flags = Audience::default();
        for letter in audience {
            match letter {
                b'r' => flags.seated = true,
                b'l' => flags.waiting = true,
                b'h' => flags.host = true,
                b's' => flags.subject = true,
                _ => return Err(MalformedEvent("audience")),
            }
        }
        let json =
            Utf8Bytes::try_from(payload.slice(end..)).map_err(|_| MalformedEvent("utf-8"))?;
        let message =
            serde_json::from_str(json.as_str()).map_err(|_| MalformedEvent("event json"))?;
        Ok(Self {
            seq,
            audience: flags,
            subject,
            message,
            json,
        })
    }
}

/// The bytes from `start` to the next space, and the index after that space.
fn word(payload: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = payload.get(start..)?;
    let space = rest.iter().position(|b| *b == b' ')?;
    Some((&rest[..space], start + space + 1))
}

fn ascii(bytes: &[u8]) -> Result<&str, MalformedEvent> {
    std::str::from_utf8(bytes).map_err(|_| MalformedEvent("header"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RoomEvent, MalformedEvent> {
        RoomEvent::parse(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn an_event_splits_into_its_header_and_the_clients_json() {
        let event =
            parse(r#"17 rs 3 u 1{"type":"participant.left","user_id":"u 1","reason":"left"}"#)
                .unwrap();
        assert_eq!(event.seq, 17);
        assert_eq!(
            event.audience,
            Audience {
                seated: true,
                subject: true,
                ..Audience::default()
            }
        );
        assert_eq!(event.subject, "u 1");
        assert_eq!(
            event.message,
            RoomMessage::ParticipantLeft {
                user_id: "u 1".into(),
                reason: "left".into()
            }
        );
        assert_eq!(event.message.type_name(), "participant.left");
        assert!(
            event
                .json
                .as_str()
                .starts_with(r#"{"type":"participant.left""#)
        );
    }

    #[test]
    fn an_event_without_a_subject_parses() {
        let event = parse(r#"3 rl 0 {"type":"meeting.ended","reason":"ended"}"#).unwrap();
        assert_eq!(event.subject, "");
        assert!(event.audience.seated && event.audience.waiting);
        assert_eq!(event.message.type_name(), "meeting.ended");
    }

    #[test]
    fn an_update_tells_a_cleared_field_from_an_unchanged_one() {
        let event = parse(r#"4 r 1 u{"type":"participant.updated","user_id":"u","language":null}"#)
            .unwrap();
        let RoomMessage::ParticipantUpdated {
            status,
            language,
            hardware_ready,
            ..
        } = &event.message
        else {
            panic!("{:?}", event.message);
        };
        assert_eq!(
            (status, language, hardware_ready),
            (&None, &Some(None), &None)
        );
        let again = serde_json::to_string(&event.message).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&again).unwrap(),
            serde_json::from_str::<serde_json::Value>(event.json.as_str()).unwrap()
        );
    }

    #[test]
    fn malformed_events_are_refused() {
        for bad in [
            "",
            "x r 0 {}",
            "1 q 0 {\"type\":\"admitted\"}",
            "1 r 99 ab{\"type\":\"admitted\"}",
            "1 r 18446744073709551615 {}",
            "1 r 0 not json",
            "1 r 0 {\"kind\":\"admitted\"}",
            // A type no script publishes, and a known type without its fields.
            "1 r 0 {\"type\":\"new.thing\"}",
            "1 r 0 {\"type\":\"participant.left\"}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let invalid_utf8 = RoomEvent::parse(Bytes::from_static(b"1 r 0 {\"type\":\"\xff\"}"));
        assert!(invalid_utf8.is_err());
    }
}
