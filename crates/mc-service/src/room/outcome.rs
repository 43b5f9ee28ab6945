//! The typed results of the room operations. Being fenced out or finding no room are errors
//! (`RoomError`) since they end every operation the same way; what remains here is what the
//! caller acts on.

use super::model::FencingToken;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssignOutcome {
    /// No room existed: it now does, owned by the caller.
    Created,
    /// The caller already owned the room under this token; settings and capacity were stored
    /// again.
    Refreshed,
    /// The room was owned under a lower token: the caller owns it now, with its participants
    /// and lobby as they were.
    TookOver {
        previous_owner: String,
        previous_token: FencingToken,
    },
}

/// What a join did. `already_present`: the user was seated or waiting before, and nothing
/// changed (so no event should be sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinOutcome {
    pub admission: Admission,
    pub participant_count: u32,
    pub already_present: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Waiting,
    /// Every seat is taken; the user was neither seated nor put in the lobby.
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmitOutcome {
    /// Seated now, or already (`already_admitted`, nothing changed).
    Admitted {
        participant_count: u32,
        already_admitted: bool,
    },
    /// No free seat: the user stays in the lobby.
    Full,
    NotInLobby,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectOutcome {
    Rejected,
    NotInLobby,
}

/// Users moved from the lobby to seats, and those left waiting, both oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmitAllOutcome {
    pub admitted: Vec<String>,
    pub still_waiting: Vec<String>,
    pub participant_count: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Participant,
    Lobby,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveOutcome {
    Left {
        was: Presence,
        remaining_participants: u32,
        /// The user was the active speaker, who is now nobody.
        cleared_active_speaker: bool,
    },
    NotPresent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndOutcome {
    Ended,
    /// No room was there (ended before, or expired).
    AlreadyGone,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpeakerOutcome {
    Changed {
        previous: Option<String>,
    },
    Unchanged,
    /// Only a seated participant can be the active speaker.
    NotAParticipant,
}
