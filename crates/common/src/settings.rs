//! The settings of a meeting (DESIGN §3): seven switches, whose `Default` is the secure
//! configuration. GC stores them and serves them in every meeting object; MC keeps a copy in
//! the room (Redis) and acts on the waiting room; the gRPC message carries them between the
//! two.

use serde::{Deserialize, Serialize};

use crate::proto::internal::v1::MeetingSettings as ProtoSettings;

/// A meeting's settings, all seven always present.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct MeetingSettings {
    /// Guests wait in the lobby until the host admits them (default `true`).
    pub waiting_room_enabled: bool,
    /// Stored for the media plane; nothing in Convene acts on it yet (default `false`).
    pub enable_transcription: bool,
    /// Stored for the media plane (default `true`).
    pub enable_e2e_encryption: bool,
    /// Concerns people without an account, whom this version does not admit (default `true`).
    pub require_auth: bool,
    /// Stored for the media plane (default `false`).
    pub recording_enabled: bool,
    /// Concerns people without an account, whom this version does not admit (default `false`).
    pub allow_guests: bool,
    /// Users of every organization may see and join the meeting (default `false`).
    pub allow_external_participants: bool,
}

impl Default for MeetingSettings {
    /// The secure configuration: a waiting room, end-to-end encryption, only signed-in
    /// members; nothing recorded or transcribed.
    fn default() -> Self {
        Self {
            waiting_room_enabled: true,
            enable_transcription: false,
            enable_e2e_encryption: true,
            require_auth: true,
            recording_enabled: false,
            allow_guests: false,
            allow_external_participants: false,
        }
    }
}

impl From<MeetingSettings> for ProtoSettings {
    fn from(s: MeetingSettings) -> Self {
        Self {
            waiting_room_enabled: s.waiting_room_enabled,
            enable_transcription: s.enable_transcription,
            enable_e2e_encryption: s.enable_e2e_encryption,
            require_auth: s.require_auth,
            recording_enabled: s.recording_enabled,
            allow_guests: s.allow_guests,
            allow_external_participants: s.allow_external_participants,
        }
    }
}

impl From<ProtoSettings> for MeetingSettings {
    fn from(s: ProtoSettings) -> Self {
        Self {
            waiting_room_enabled: s.waiting_room_enabled,
            enable_transcription: s.enable_transcription,
            enable_e2e_encryption: s.enable_e2e_encryption,
            require_auth: s.require_auth,
            recording_enabled: s.recording_enabled,
            allow_guests: s.allow_guests,
            allow_external_participants: s.allow_external_participants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_secure_ones() {
        let s = MeetingSettings::default();
        assert!(s.waiting_room_enabled && s.enable_e2e_encryption && s.require_auth);
        assert!(!s.enable_transcription && !s.recording_enabled);
        assert!(!s.allow_guests && !s.allow_external_participants);
    }

    #[test]
    fn settings_survive_the_grpc_message_and_json() {
        let s = MeetingSettings {
            waiting_room_enabled: false,
            recording_enabled: true,
            allow_external_participants: true,
            ..MeetingSettings::default()
        };
        assert_eq!(MeetingSettings::from(ProtoSettings::from(s)), s);
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["waiting_room_enabled"], false);
        assert_eq!(serde_json::from_value::<MeetingSettings>(json).unwrap(), s);
    }
}
