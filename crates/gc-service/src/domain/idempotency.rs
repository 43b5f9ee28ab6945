//! `Idempotency-Key` of `POST /api/v1/meetings`: what a key may look like, and when two requests
//! are "the same request".
//!
//! Two requests are the same when they mean the same meeting: the hash covers the validated,
//! normalised request (trimmed name, resolved settings, `lock_room` folded into
//! `waiting_room_enabled`) rather than the raw bytes, so a client library that re-serialises
//! its retry with other whitespace or key order is still recognised, while any change to what
//! would be created is not.

use uuid::Uuid;

use crate::domain::validation::ValidationError;

/// How long a key is honoured. After that, the same key creates a new meeting.
pub const KEY_TTL_HOURS: i32 = 24;

/// Longest key accepted, in bytes (they are ASCII).
pub const MAX_KEY_LEN: usize = 255;

/// A client-chosen key: 1–255 visible ASCII characters (`!` to `~`), which covers UUIDs, ULIDs
/// and every common key format while keeping keys printable in logs and safe in SQL text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_KEY_LEN
            && raw.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::InvalidIdempotencyKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of a canonical create request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHash([u8; 32]);

impl RequestHash {
    /// A hash of 32 bytes made by its owner (see `CreateMeeting::request_hash`).
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A hash read back from storage; `None` if it is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The key and request hash a create stores alongside its meeting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: IdempotencyKey,
    pub request_hash: RequestHash,
}

/// What a retry with a key that is already stored gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Same request: answer with the meeting the first request created.
    SameRequest { meeting_id: Uuid },
    /// Another request under the same key: a client bug, answered 409.
    DifferentRequest,
}

impl Replay {
    pub fn decide(stored_hash: RequestHash, stored_meeting: Uuid, incoming: RequestHash) -> Self {
        if stored_hash == incoming {
            Replay::SameRequest {
                meeting_id: stored_meeting,
            }
        } else {
            Replay::DifferentRequest
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use common::display_name::DisplayName;

    use crate::domain::meeting::{CreateMeeting, MaxParticipants};
    use common::settings::MeetingSettings;

    fn request() -> CreateMeeting {
        CreateMeeting {
            display_name: DisplayName::parse("Standup").unwrap(),
            max_participants: None,
            scheduled_start_time: None,
            settings: MeetingSettings::default(),
        }
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse("0190f1b2-7c1e-7abc-8def-0123456789ab").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").is_ok());
        for bad in ["", "with space", "tab\t", "é", "\u{7f}"] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(ValidationError::InvalidIdempotencyKey),
                "{bad:?}"
            );
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn equal_requests_hash_equal() {
        assert_eq!(request().request_hash(), request().request_hash());
        let mut untrimmed = request();
        untrimmed.display_name = DisplayName::parse("  Standup ").unwrap();
        assert_eq!(untrimmed.request_hash(), request().request_hash());
    }

    #[test]
    fn any_change_to_the_request_changes_the_hash() {
        let base = request().request_hash();
        let mut renamed = request();
        renamed.display_name = DisplayName::parse("Standup2").unwrap();
        let mut limited = request();
        limited.max_participants = Some(MaxParticipants::parse(100).unwrap());
        let mut scheduled = request();
        scheduled.scheduled_start_time = Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0).single();
        let mut recorded = request();
        recorded.settings.recording_enabled = true;
        let mut open = request();
        open.settings.waiting_room_enabled = false;
        let hashes = [renamed, limited, scheduled, recorded, open]
            .iter()
            .map(|r| r.request_hash())
            .collect::<Vec<_>>();
        for (i, h) in hashes.iter().enumerate() {
            assert_ne!(*h, base, "variant {i}");
            for other in &hashes[i + 1..] {
                assert_ne!(h, other);
            }
        }
    }

    #[test]
    fn a_stored_key_replays_only_the_same_request() {
        let meeting_id = Uuid::new_v4();
        let hash = request().request_hash();
        assert_eq!(
            Replay::decide(hash, meeting_id, hash),
            Replay::SameRequest { meeting_id }
        );
        let mut other = request();
        other.settings.allow_guests = true;
        assert_eq!(
            Replay::decide(hash, meeting_id, other.request_hash()),
            Replay::DifferentRequest
        );
    }

    #[test]
    fn hashes_read_back_from_storage_must_be_32_bytes() {
        let hash = request().request_hash();
        assert_eq!(RequestHash::from_slice(hash.as_bytes()), Some(hash));
        assert_eq!(RequestHash::from_slice(&[0; 31]), None);
    }
}
