//! The typed results of the room operations. Being fenced out or finding no room are errors
//! (`RoomError`) since they end every operation the same way; what remains here is what the
//! caller acts on.

use super::model::{FencingToken, Participant, Role};

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinOutcome {
    pub admission: Admission,
    pub participant_count: u32,
    pub already_present: bool,
    /// The number of the user's seat when admitted, else 0.
    pub seat: u64,
    /// Users waiting in the lobby after the join, counted in the same atomic step as
    /// `participant_count`.
    pub lobby_count: u32,
    /// The role the room gave (it decides who hosts, whatever the caller saw).
    pub role: Role,
    /// The change of host this join made: the meeting's creator took the role back while
    /// nobody hosted.
    pub host_change: Option<HostChange>,
    /// Who hosts the room after the join, under the number of the last change (0: none yet).
    pub host: HostChange,
}

/// A change of the room's host (DESIGN §12), numbered so that GC, which hears of changes by
/// several paths, records the newest last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostChange {
    /// The new host; `None` when nobody hosts now.
    pub host: Option<String>,
    /// The room's number for the change (`host_seq`), increasing.
    pub seq: u64,
}

/// What a hand-over did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// `to` hosts now (or hosted already: `seq` is then the last change's number).
    Transferred { seq: u64 },
    /// The room's host is not the one the caller saw: who hosts (`None`: nobody), under the
    /// number of the room's last change of host.
    NotHost { host: HostChange },
    /// `to` holds no seat.
    NotSeated,
    /// `to` is a guest or not a member of the meeting's org.
    NotMember,
}

/// What a removal did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// As a leave (NotPresent: they were neither seated nor waiting, and are remembered all
    /// the same).
    Removed(LeaveOutcome),
    /// The user is the room's host: nothing changed.
    IsHost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Waiting,
    /// Every seat is taken; the user was neither seated nor put in the lobby.
    Full,
    /// A guest's join found as many guests waiting as the lobby may hold; the guest was not
    /// put in the lobby.
    LobbyFull,
    /// The host removed the user from this meeting (DESIGN §12): refused until it ends.
    Removed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmitOutcome {
    /// Seated now, or already (`already_admitted`, nothing changed).
    Admitted {
        participant_count: u32,
        already_admitted: bool,
        /// The number of the user's seat.
        seat: u64,
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
    /// The seat numbers of `admitted`, in the same order.
    pub seats: Vec<u64>,
}

/// What a settings update did: the admissions it made (waiting room off), and the version of
/// the settings the room holds after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsOutcome {
    pub moves: AdmitAllOutcome,
    /// The room held a newer version than the one sent: nothing changed.
    pub stale: bool,
    /// The version the room holds now; 0 for a room that was never given one.
    pub settings_version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Participant,
    Lobby,
}

/// What a leave did. Both outcomes carry the number of the last seat the room gave when the
/// user left: every seat of theirs up to it has ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaveOutcome {
    Left {
        was: Presence,
        remaining_participants: u32,
        /// The user was the active speaker, who is now nobody.
        cleared_active_speaker: bool,
        /// The seat that ended (for `Presence::Participant`), as it was stored.
        seat: Option<Box<Participant>>,
        last_seat: u64,
        /// The host's seat ended while others stayed: the role passed on.
        host_change: Option<HostChange>,
    },
    NotPresent {
        participant_count: u32,
        last_seat: u64,
    },
}

impl LeaveOutcome {
    /// The number of the last seat the room gave when the user left.
    pub fn last_seat(&self) -> u64 {
        match self {
            LeaveOutcome::Left { last_seat, .. } | LeaveOutcome::NotPresent { last_seat, .. } => {
                *last_seat
            }
        }
    }
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
