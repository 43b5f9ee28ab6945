//! What a meeting's live room answers, as GC's use cases read it: the outcomes of the room
//! operations of `clients::mc::Placement` (join, admit, admit-all, leave, settings, state),
//! free of the wire format. The room decides who is present and numbers the seats it gives;
//! these carry its decisions to PostgreSQL (`db::participants`).

use chrono::{DateTime, Utc};
use common::jwt::MeetingRole;
use uuid::Uuid;

/// Where a join left the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Waiting,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Admitted => "admitted",
            Admission::Waiting => "waiting",
        }
    }
}

/// A seat a room gave: the user, their role and the seat's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seated {
    pub user_id: Uuid,
    pub role: MeetingRole,
    pub seat: i64,
}

/// The seat a leave ended, as the room reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedSeat {
    pub seat: i64,
    pub role: MeetingRole,
    pub joined_at: Option<DateTime<Utc>>,
}

/// How many are seated and how many wait, as the room says now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub participants: u32,
    pub lobby: u32,
}

/// The room's answer to a join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomJoin {
    pub admission: Admission,
    /// The caller's seat when admitted (also when they were seated already).
    pub seat: Option<i64>,
    /// People seated after the join.
    pub participant_count: u32,
    /// People waiting in the lobby after the join, counted with `participant_count` in one
    /// atomic step. `None` from a controller older than the field (a rolling update): the
    /// lobby must then be read from the room.
    pub lobby_count: Option<u32>,
    /// The URL the caller's client opens its signaling WebSocket at, on the room's owner.
    pub signaling_url: String,
    /// The role the room gave (it decides who hosts); `None` from an older controller.
    pub role: Option<MeetingRole>,
    /// The change of host the join made: the creator took the role back while nobody hosted.
    pub host_change: Option<HostChange>,
    /// Who hosts the room after the join, as of its last change; `None` from an older
    /// controller.
    pub host: Option<HostChange>,
}

/// A change of a room's host (DESIGN §12), as the room numbered it: GC hears of changes by
/// several paths and records one only if its number is above the last it recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostChange {
    /// The new host; `None` when nobody hosts now.
    pub host: Option<Uuid>,
    /// The room's number for the change.
    pub seq: i64,
}

/// The room's answer to a leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomLeave {
    /// The seat that ended, when the user was seated (not when they left the lobby or were
    /// not there).
    pub seat: Option<EndedSeat>,
    /// The room's last seat number when the user left: every seat of theirs up to it has ended
    /// (0: none numbered yet).
    pub last_seat: i64,
    /// Nobody is seated any more.
    pub room_empty: bool,
    /// The user hosted and others stayed: the role passed on.
    pub host_change: Option<HostChange>,
}

/// The room's answer to admit-all: who got a seat (guests, with their seats), who still waits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmittedAll {
    pub admitted: Vec<Seated>,
    pub still_waiting: Vec<Uuid>,
}
