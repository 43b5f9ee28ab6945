//! The names of a room's Redis keys (docs/redis.md lists them with their types and fields).
//!
//! Every name carries the room's code in literal braces: Redis Cluster hashes only the part
//! between the first `{` and the next `}`, so all keys of one room live in one slot and a Lua
//! script may touch all of them, on one node or on a cluster.

use common::meeting_code::MeetingCode;

/// The key suffixes, in the order every script receives its `KEYS` (see `lua/prelude.lua`).
const SUFFIXES: [&str; 7] = [
    "meta",
    "participants",
    "lobby",
    "lobby_details",
    "active_speaker",
    "rejected",
    "removed",
];

/// Why a key prefix cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyPrefixError {
    /// A brace before the room's tag would become the hash tag itself, and the room's keys
    /// would no longer be guaranteed one slot.
    #[error("the key prefix must not contain '{{' or '}}'")]
    Brace,
}

/// A validated prefix put before every key (empty in production; tests give each test its own
/// so that parallel tests sharing one Redis never meet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    pub fn parse(prefix: &str) -> Result<Self, KeyPrefixError> {
        if prefix.contains(['{', '}']) {
            return Err(KeyPrefixError::Brace);
        }
        Ok(Self(prefix.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The seven keys of one room, e.g. `room:{Ab3dE5fG7hJ9}:meta`, and its event channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomKeys {
    pub meta: String,
    pub participants: String,
    pub lobby: String,
    pub lobby_details: String,
    pub active_speaker: String,
    /// Users the host rejected, with the reason they were given, until they join again.
    pub rejected: String,
    /// Users the host removed, with the reason they were given: refused until the meeting
    /// ends (DESIGN §12).
    pub removed: String,
    /// The pub/sub channel the scripts publish the room's events on (not a key: it holds no
    /// data and has no TTL). `lua/prelude.lua` derives the same name from `meta`.
    pub events: String,
}

impl RoomKeys {
    pub fn new(prefix: &KeyPrefix, code: &MeetingCode) -> Self {
        let name = |suffix: &str| format!("{}room:{{{code}}}:{suffix}", prefix.as_str());
        let [
            meta,
            participants,
            lobby,
            lobby_details,
            active_speaker,
            rejected,
            removed,
        ] = SUFFIXES.map(name);
        Self {
            meta,
            participants,
            lobby,
            lobby_details,
            active_speaker,
            rejected,
            removed,
            events: name("events"),
        }
    }

    /// All keys, in the order of a script's `KEYS`.
    pub fn all(&self) -> [&str; 7] {
        [
            &self.meta,
            &self.participants,
            &self.lobby,
            &self.lobby_details,
            &self.active_speaker,
            &self.rejected,
            &self.removed,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_put_the_code_in_braces_after_the_prefix() {
        let code = MeetingCode::parse("Ab3dE5fG7hJ9").unwrap();
        let keys = RoomKeys::new(&KeyPrefix::parse("t1:").unwrap(), &code);
        assert_eq!(keys.meta, "t1:room:{Ab3dE5fG7hJ9}:meta");
        assert_eq!(keys.participants, "t1:room:{Ab3dE5fG7hJ9}:participants");
        assert_eq!(keys.lobby, "t1:room:{Ab3dE5fG7hJ9}:lobby");
        assert_eq!(keys.lobby_details, "t1:room:{Ab3dE5fG7hJ9}:lobby_details");
        assert_eq!(keys.active_speaker, "t1:room:{Ab3dE5fG7hJ9}:active_speaker");
        assert_eq!(keys.rejected, "t1:room:{Ab3dE5fG7hJ9}:rejected");
        assert_eq!(keys.removed, "t1:room:{Ab3dE5fG7hJ9}:removed");
        assert_eq!(keys.events, "t1:room:{Ab3dE5fG7hJ9}:events");
    }

    #[test]
    fn a_prefix_with_a_brace_is_refused() {
        assert_eq!(KeyPrefix::parse("a{b"), Err(KeyPrefixError::Brace));
        assert_eq!(KeyPrefix::parse("a}b"), Err(KeyPrefixError::Brace));
        assert!(KeyPrefix::parse("").is_ok());
    }
}
