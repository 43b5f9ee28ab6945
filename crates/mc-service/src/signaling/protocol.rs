//! The signaling protocol (DESIGN §4): what a client may send, parsed and checked in one pass,
//! and the close codes. Parsing never panics and never allocates for the message that dominates
//! the traffic (`audio_level`); the property tests at the end throw arbitrary text at it. What
//! the server sends is `messages.rs`.
//!
//! [`ClientMessage`] also derives its JSON Schema (`docs/signaling.schema.json`): a test holds
//! what the schema describes, serialized, to what [`ClientMessage::parse`] reads back.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::room::MAX_LANGUAGE_BYTES;
use crate::speaker::{MAX_LEVEL_DBFS, MIN_LEVEL_DBFS};

/// Largest frame (and message) accepted, in bytes; a larger one closes the socket with 1009.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// The most one message MC sends may hold in the socket's write buffer, which keeps the
/// capacity of the largest message it wrote for the socket's life. A `welcome` lists the whole
/// room: 10,000 seats (the largest `max_participants` an org may allow) with the longest names
/// (255 characters of 4 bytes) and ids take about 13 MiB. So a socket costs MC about as much
/// memory as its room's `welcome` (about 200 bytes a seat with short names), once. Writing a
/// large message in frames would keep the buffer small; axum's socket cannot send frames.
pub const MAX_WRITE_BYTES: usize = 16 * 1024 * 1024;
/// Longest meeting token accepted in `auth` (the verifier's own bound).
pub const MAX_TOKEN_BYTES: usize = common::jwt::MAX_TOKEN_BYTES;

/// Close codes (DESIGN §4) and the standard ones MC uses.
pub mod close {
    /// The meeting ended (after `meeting.ended`), the user left, or was rejected... normal.
    pub const NORMAL: u16 = 1000;
    /// MC is stopping, or no longer holds the room: reconnect through GC's join.
    pub const GOING_AWAY: u16 = 1001;
    /// Binary frames: the protocol is text.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// The client did not read what it was sent, and fell too far behind.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame over [`super::MAX_FRAME_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// MC failed unexpectedly (Redis unreachable): try again.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// No valid `auth` within the time allowed, or a token that is not a meeting token.
    pub const AUTH_FAILED: u16 = 4401;
    /// A token for another meeting, or a user who is neither seated nor waiting.
    pub const NOT_A_MEMBER: u16 = 4403;
    /// The meeting is unknown here or has ended.
    pub const MEETING_GONE: u16 = 4404;
    /// A newer connection of the same user took over.
    pub const REPLACED: u16 = 4409;
    /// Too many messages.
    pub const RATE_LIMITED: u16 = 4429;

    /// Every close code by its name, as the signaling schema publishes them for clients.
    pub const ALL: [(&str, u16); 11] = [
        ("NORMAL", NORMAL),
        ("GOING_AWAY", GOING_AWAY),
        ("UNSUPPORTED_DATA", UNSUPPORTED_DATA),
        ("POLICY_VIOLATION", POLICY_VIOLATION),
        ("TOO_BIG", TOO_BIG),
        ("TRY_AGAIN_LATER", TRY_AGAIN_LATER),
        ("AUTH_FAILED", AUTH_FAILED),
        ("NOT_A_MEMBER", NOT_A_MEMBER),
        ("MEETING_GONE", MEETING_GONE),
        ("REPLACED", REPLACED),
        ("RATE_LIMITED", RATE_LIMITED),
    ];
}

/// What a client may send.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message, and only then: the meeting token from GC's join.
    #[schemars(title = "Auth")]
    Auth {
        #[schemars(length(min = 1, max = MAX_TOKEN_BYTES))]
        token: String,
    },
    /// The microphone's level, every 20–100 ms while connected.
    #[schemars(title = "AudioLevel")]
    AudioLevel {
        #[schemars(range(min = MIN_LEVEL_DBFS, max = MAX_LEVEL_DBFS))]
        level_dbfs: f64,
    },
    /// The pre-join device test's result.
    #[schemars(title = "Hardware")]
    Hardware {
        audio_ready: bool,
        video_ready: bool,
    },
    /// The participant's language.
    #[schemars(title = "SetLanguage")]
    SetLanguage {
        /// A BCP 47 tag (`en`, `pt-BR`): a primary subtag of 2 to 8 letters, then subtags of 1
        /// to 8 letters or digits.
        #[schemars(length(min = 2, max = MAX_LANGUAGE_BYTES), regex(pattern = LANGUAGE_PATTERN))]
        language: String,
    },
    /// Answered by `pong`; keeps a quiet socket from idling out.
    #[schemars(title = "Ping")]
    Ping,
    /// Leave the meeting (or the lobby), as REST leave does.
    #[schemars(title = "Leave")]
    Leave,
}

/// What [`is_language_tag`] accepts, as a regular expression for the schema.
const LANGUAGE_PATTERN: &str = "^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$";

/// Why a text frame is not a [`ClientMessage`]; answered with an `error` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not a JSON object with a string `type`, or a field of the wrong JSON type.
    Malformed,
    UnknownType,
    /// A field missing or out of its range; the message names it.
    Invalid(&'static str),
}

impl ParseError {
    /// The `error` message's text; its code is `BAD_REQUEST`.
    pub fn message(self) -> &'static str {
        match self {
            ParseError::Malformed => "a message is a JSON object with a type",
            ParseError::UnknownType => "unknown message type",
            ParseError::Invalid(what) => what,
        }
    }
}

/// Every field any message has; `type` picks which apply. Strings are borrowed where they
/// need no unescaping. Unknown fields are ignored (clients may be newer); a field given twice
/// is malformed.
#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    token: Option<std::borrow::Cow<'a, str>>,
    level_dbfs: Option<f64>,
    audio_ready: Option<bool>,
    video_ready: Option<bool>,
    #[serde(borrow)]
    language: Option<std::borrow::Cow<'a, str>>,
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let raw: Raw<'_> = serde_json::from_str(text).map_err(|_| ParseError::Malformed)?;
        match raw.kind.as_ref() {
            "audio_level" => {
                let level = raw
                    .level_dbfs
                    .ok_or(ParseError::Invalid("level_dbfs is required"))?;
                if !(MIN_LEVEL_DBFS..=MAX_LEVEL_DBFS).contains(&level) {
                    return Err(ParseError::Invalid("level_dbfs must be between -127 and 0"));
                }
                Ok(ClientMessage::AudioLevel { level_dbfs: level })
            }
            "auth" => {
                let token = raw.token.ok_or(ParseError::Invalid("token is required"))?;
                if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
                    return Err(ParseError::Invalid("token is malformed"));
                }
                Ok(ClientMessage::Auth {
                    token: token.into_owned(),
                })
            }
            "hardware" => match (raw.audio_ready, raw.video_ready) {
                (Some(audio_ready), Some(video_ready)) => Ok(ClientMessage::Hardware {
                    audio_ready,
                    video_ready,
                }),
                _ => Err(ParseError::Invalid(
                    "audio_ready and video_ready are required",
                )),
            },
            "set_language" => {
                let language = raw
                    .language
                    .ok_or(ParseError::Invalid("language is required"))?;
                if !is_language_tag(&language) {
                    return Err(ParseError::Invalid("language must be a BCP 47 tag"));
                }
                Ok(ClientMessage::SetLanguage {
                    language: language.into_owned(),
                })
            }
            "ping" => Ok(ClientMessage::Ping),
            "leave" => Ok(ClientMessage::Leave),
            _ => Err(ParseError::UnknownType),
        }
    }

    /// The `type` as a bounded metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Auth { .. } => "auth",
            ClientMessage::AudioLevel { .. } => "audio_level",
            ClientMessage::Hardware { .. } => "hardware",
            ClientMessage::SetLanguage { .. } => "set_language",
            ClientMessage::Ping => "ping",
            ClientMessage::Leave => "leave",
        }
    }
}

/// A BCP 47 tag in its common shape: a primary subtag of 2 to 8 letters, then subtags of 1 to
/// 8 letters or digits, separated by `-` (`en`, `pt-BR`, `zh-Hant-TW`, `sr-Latn-RS`), at
/// most [`MAX_LANGUAGE_BYTES`]. Only ASCII, so nothing invisible or confusable gets stored.
pub fn is_language_tag(tag: &str) -> bool {
    if tag.is_empty() || tag.len() > MAX_LANGUAGE_BYTES {
        return false;
    }
    let mut subtags = tag.split('-');
    let primary = subtags.next().unwrap_or_default();
    (2..=8).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_message_parses() {
        let cases = [
            (
                r#"{"type":"auth","token":"a.b.c"}"#,
                ClientMessage::Auth {
                    token: "a.b.c".into(),
                },
            ),
            (
                r#"{"type":"audio_level","level_dbfs":-35.5}"#,
                ClientMessage::AudioLevel { level_dbfs: -35.5 },
            ),
            (
                r#"{"type":"audio_level","level_dbfs":0}"#,
                ClientMessage::AudioLevel { level_dbfs: 0.0 },
            ),
            (
                r#"{"type":"audio_level","level_dbfs":-127}"#,
                ClientMessage::AudioLevel { level_dbfs: -127.0 },
            ),
            (
                r#"{"type":"hardware","audio_ready":true,"video_ready":false}"#,
                ClientMessage::Hardware {
                    audio_ready: true,
                    video_ready: false,
                },
            ),
            (
                r#"{"type":"set_language","language":"pt-BR"}"#,
                ClientMessage::SetLanguage {
                    language: "pt-BR".into(),
                },
            ),
            (r#"{"type":"ping"}"#, ClientMessage::Ping),
            (
                r#" {"type":"leave","extra":[1,2,{"x":null}]} "#,
                ClientMessage::Leave,
            ),
            (
                r#"{"type":"set_language","language":"\u0065n"}"#,
                ClientMessage::SetLanguage {
                    language: "en".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(ClientMessage::parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        use ParseError::*;
        let cases: [(&str, ParseError); 16] = [
            ("", Malformed),
            ("null", Malformed),
            ("[]", Malformed),
            ("{}", Malformed),
            (r#"{"type":7}"#, Malformed),
            (r#"{"type":"ping","type":"leave"}"#, Malformed),
            (r#"{"type":"audio_level","level_dbfs":"-3"}"#, Malformed),
            (r#"{"type":"audio_level","level_dbfs":1e400}"#, Malformed),
            (r#"{"type":"shout"}"#, UnknownType),
            (r#"{"type":"PING"}"#, UnknownType),
            (r#"{"type":"ping\u0000"}"#, UnknownType),
            (
                r#"{"type":"audio_level"}"#,
                Invalid("level_dbfs is required"),
            ),
            (
                r#"{"type":"audio_level","level_dbfs":0.5}"#,
                Invalid("level_dbfs must be between -127 and 0"),
            ),
            (
                r#"{"type":"audio_level","level_dbfs":-127.01}"#,
                Invalid("level_dbfs must be between -127 and 0"),
            ),
            (
                r#"{"type":"hardware","audio_ready":true}"#,
                Invalid("audio_ready and video_ready are required"),
            ),
            (
                r#"{"type":"auth","token":""}"#,
                Invalid("token is malformed"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(ClientMessage::parse(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn language_tags_are_plain_bcp47_shapes() {
        for good in [
            "en",
            "pt-BR",
            "zh-Hant-TW",
            "sr-Latn-RS",
            "de-CH-1996",
            "tlh",
        ] {
            assert!(is_language_tag(good), "{good}");
        }
        let long = format!("en-{}", "abcdefgh-".repeat(8));
        for bad in [
            "",
            "e",
            "-en",
            "en-",
            "en--US",
            "en_US",
            "ébé",
            "en US",
            "en\0",
            "abcdefghi",
            &long,
        ] {
            assert!(!is_language_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn what_the_schema_describes_parses_back_as_itself() {
        let every = [
            ClientMessage::Auth {
                token: "a.b.c".into(),
            },
            ClientMessage::AudioLevel { level_dbfs: -42.5 },
            ClientMessage::Hardware {
                audio_ready: false,
                video_ready: true,
            },
            ClientMessage::SetLanguage {
                language: "zh-Hant-TW".into(),
            },
            ClientMessage::Ping,
            ClientMessage::Leave,
        ];
        for message in every {
            let text = serde_json::to_string(&message).unwrap();
            assert_eq!(ClientMessage::parse(&text), Ok(message.clone()), "{text}");
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&text).unwrap()["type"],
                message.kind()
            );
        }
    }

    #[test]
    fn close_codes_have_one_name_each() {
        let mut codes: Vec<u16> = close::ALL.iter().map(|(_, code)| *code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), close::ALL.len());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn message_like() -> impl Strategy<Value = String> {
            let kind = prop_oneof![
                Just("auth"),
                Just("audio_level"),
                Just("hardware"),
                Just("set_language"),
                Just("ping"),
                Just("leave"),
                Just("nope"),
                Just("")
            ];
            let value = prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                any::<f64>().prop_map(|f| format!("{f}")),
                any::<i64>().prop_map(|i| i.to_string()),
                ".{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap()),
                Just("[[[[[]]]]]".to_owned()),
                Just("{\"a\":{}}".to_owned()),
            ];
            let field = prop_oneof![
                Just("token"),
                Just("level_dbfs"),
                Just("audio_ready"),
                Just("video_ready"),
                Just("language"),
                Just("type"),
                Just("x")
            ];
            (kind, proptest::collection::vec((field, value), 0..5)).prop_map(|(kind, fields)| {
                let mut text = format!("{{\"type\":\"{kind}\"");
                for (name, value) in fields {
                    text.push_str(&format!(",\"{name}\":{value}"));
                }
                text.push('}');
                text
            })
        }

        proptest! {
            #[test]
            fn any_text_parses_or_is_refused_without_panicking(text in any::<String>()) {
                let _ = ClientMessage::parse(&text);
            }

            #[test]
            fn near_messages_parse_or_are_refused_and_what_parses_is_in_range(text in message_like()) {
                match ClientMessage::parse(&text) {
                    Ok(ClientMessage::AudioLevel { level_dbfs }) => {
                        prop_assert!((MIN_LEVEL_DBFS..=MAX_LEVEL_DBFS).contains(&level_dbfs));
                    }
                    Ok(ClientMessage::SetLanguage { language }) => {
                        prop_assert!(is_language_tag(&language));
                    }
                    Ok(ClientMessage::Auth { token }) => {
                        prop_assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES);
                    }
                    Ok(_) | Err(_) => {}
                }
            }

            #[test]
            fn what_the_schemas_language_pattern_matches_is_a_language_tag(
                tag in proptest::string::string_regex(
                    LANGUAGE_PATTERN.trim_start_matches('^').trim_end_matches('$'),
                ).unwrap(),
            ) {
                prop_assert_eq!(is_language_tag(&tag), tag.len() <= MAX_LANGUAGE_BYTES, "{}", tag);
            }
        }
    }
}
