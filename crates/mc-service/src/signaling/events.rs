//! The room events the Lua scripts publish (`lua/prelude.lua`, `publish`), as every MC's
//! subscriber receives them: `<seq> <audience> <subject length> <subject><event JSON>`.
//!
//! The event JSON is passed to sockets byte for byte (one shared buffer for every socket of the
//! room); only its `type` is read, to act on the events that change a socket's own state.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;

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

/// The event types a socket acts on beyond passing them on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// To the subject: they were let in from the lobby.
    Admitted,
    /// To the subject: the host turned them away.
    Rejected,
    /// The subject lost their seat.
    ParticipantLeft,
    /// The subject left the lobby.
    LobbyLeft,
    /// To the subject's room: they were seated.
    ParticipantJoined,
    /// To the room: the subject's fields changed.
    ParticipantUpdated,
    MeetingEnded,
    /// Anything else: passed on as it is.
    Other,
}

/// One event of one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEvent {
    pub seq: u64,
    pub audience: Audience,
    /// A user id, or empty.
    pub subject: String,
    pub kind: Kind,
    /// The `type`, as a bounded metric label.
    pub type_label: &'static str,
    /// The event as clients receive it.
    pub json: Utf8Bytes,
}

/// The `type`s the scripts publish; anything else is counted as `other`.
const KNOWN_TYPES: [&str; 11] = [
    "participant.joined",
    "participant.left",
    "participant.updated",
    "lobby.joined",
    "lobby.left",
    "admitted",
    "rejected",
    "active_speaker",
    "settings.updated",
    "meeting.ended",
    "other",
];

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
        let type_label = event_type(&json)?;
        let kind = match type_label {
            "admitted" => Kind::Admitted,
            "rejected" => Kind::Rejected,
            "participant.left" => Kind::ParticipantLeft,
            "participant.joined" => Kind::ParticipantJoined,
            "participant.updated" => Kind::ParticipantUpdated,
            "lobby.left" => Kind::LobbyLeft,
            "meeting.ended" => Kind::MeetingEnded,
            _ => Kind::Other,
        };
        Ok(Self {
            seq,
            audience: flags,
            subject,
            kind,
            type_label,
            json,
        })
    }

    /// A string field of the event (`reason`), if it has one.
    pub fn field(&self, name: &str) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(self.json.as_str()).ok()?;
        value.get(name)?.as_str().map(str::to_owned)
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

fn event_type(json: &str) -> Result<&'static str, MalformedEvent> {
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    let typed: Typed<'_> = serde_json::from_str(json).map_err(|_| MalformedEvent("json"))?;
    Ok(KNOWN_TYPES
        .iter()
        .find(|known| **known == typed.kind)
        .copied()
        .unwrap_or("other"))
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
        assert_eq!(event.kind, Kind::ParticipantLeft);
        assert_eq!(event.type_label, "participant.left");
        assert!(
            event
                .json
                .as_str()
                .starts_with(r#"{"type":"participant.left""#)
        );
        assert_eq!(event.field("reason").as_deref(), Some("left"));
    }

    #[test]
    fn an_event_without_a_subject_and_an_unknown_type_parse() {
        let event = parse(r#"3 rl 0 {"type":"new.thing"}"#).unwrap();
        assert_eq!(event.subject, "");
        assert_eq!((event.kind, event.type_label), (Kind::Other, "other"));
        assert!(event.audience.seated && event.audience.waiting);
    }

    #[test]
    fn malformed_events_are_refused() {
        for bad in [
            "",
            "x r 0 {}",
            "1 q 0 {\"type\":\"a\"}",
            "1 r 99 ab{\"type\":\"a\"}",
            "1 r 18446744073709551615 {}",
            "1 r 0 not json",
            "1 r 0 {\"kind\":\"a\"}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let invalid_utf8 = RoomEvent::parse(Bytes::from_static(b"1 r 0 {\"type\":\"\xff\"}"));
        assert!(invalid_utf8.is_err());
    }
}
