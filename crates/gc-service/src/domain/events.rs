//! Every change a meeting goes through, as one type: [`MeetingEvent`], with who made it
//! ([`Actor`]). A change is recorded with its event in the transaction that makes it, by one
//! writer (`db::events`): the audit log and the webhook outbox (DESIGN §13) are written from
//! the same rows. Events that begin in a meeting controller (a dropped
//! socket's leave after the grace, a room gone empty) reach the writer through GC's report
//! handlers (`use_cases::controllers`), like every other change.
//!
//! The serialized form is the audit row's: `action` names the event, `details` holds its facts
//! (ids, codes, numbers and reasons; never names, e-mail addresses or secrets). Some statements
//! build the details of their events in SQL, from values only the database knows (the limit a
//! create was given, the meeting a first seat started); the tests read every audit row their
//! scenarios wrote back into this type, so a statement that wrote another shape fails them.

use std::net::IpAddr;

use common::jwt::MeetingRole;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change of a meeting. `action` and `details` of its audit row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    content = "details",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum MeetingEvent {
    /// `POST /meetings` stored it.
    MeetingCreated {
        meeting_code: String,
        max_participants: i32,
        /// The create carried an `Idempotency-Key`.
        idempotency_key: bool,
    },
    /// Its first seat was given: the meeting became `active`.
    MeetingStarted {},
    /// It ended; every visit still open was closed.
    MeetingEnded {
        reason: EndReason,
        /// The visits its end closed.
        participants_present: u64,
    },
    /// A seat was given: the participant is in the room.
    ParticipantAdmitted { user_id: Uuid, role: MeetingRole },
    /// The host turned someone in the lobby away.
    ParticipantRejected { user_id: Uuid },
    /// The host took someone out of the meeting, seated or waiting (DESIGN §12).
    ParticipantRemoved { user_id: Uuid },
    /// A seat (or a visit left open) ended.
    ParticipantLeft { user_id: Uuid, reason: LeaveReason },
    /// A person without an account asked to join by the meeting's link and waits in its lobby
    /// (`POST /{code}/guest-join`, DESIGN §12).
    GuestJoined { guest_id: Uuid },
    /// A member's join left them waiting in the lobby (each such join; a guest's is
    /// [`MeetingEvent::GuestJoined`]).
    ParticipantWaiting { user_id: Uuid },
    /// The host role moved (DESIGN §12): `from` hosted (`None`: nobody), `to` hosts now
    /// (`None`: nobody).
    HostTransferred {
        from: Option<Uuid>,
        to: Option<Uuid>,
        reason: HostChangeReason,
    },
    /// `PATCH /config` changed something.
    SettingsChanged {
        before: serde_json::Value,
        after: serde_json::Value,
    },
}

impl MeetingEvent {
    /// The audit row's `action`.
    pub fn action(&self) -> &'static str {
        match self {
            MeetingEvent::MeetingCreated { .. } => "meeting_created",
            MeetingEvent::MeetingStarted {} => "meeting_started",
            MeetingEvent::MeetingEnded { .. } => "meeting_ended",
            MeetingEvent::ParticipantAdmitted { .. } => "participant_admitted",
            MeetingEvent::ParticipantRejected { .. } => "participant_rejected",
            MeetingEvent::ParticipantRemoved { .. } => "participant_removed",
            MeetingEvent::ParticipantLeft { .. } => "participant_left",
            MeetingEvent::GuestJoined { .. } => "guest_joined",
            MeetingEvent::ParticipantWaiting { .. } => "participant_waiting",
            MeetingEvent::HostTransferred { .. } => "host_transferred",
            MeetingEvent::SettingsChanged { .. } => "settings_changed",
        }
    }

    /// The audit row's `details`.
    pub fn details(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut tagged)) => {
                tagged.remove("details").unwrap_or_default()
            }
            // Every variant is a struct of plain values: it always serializes as an object.
            _ => serde_json::Value::Object(Default::default()),
        }
    }

    /// The event an audit row records, if it is one of these.
    pub fn from_row(action: &str, details: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "action": action, "details": details }))
    }
}

/// Why the host changed, as the `host_transferred` audit row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostChangeReason {
    /// The host handed the meeting over (`POST /{code}/host/{user_id}`).
    HandedOver,
    /// The host's seat ended while others stayed; the role passed on (or to nobody).
    Succession,
    /// The meeting's creator joined while nobody hosted and took the role back.
    Reclaimed,
    /// A change the room made that GC failed to record when it happened, recorded when a
    /// later join read the room's host.
    Recovered,
}

/// Why a meeting ended, as participants are told and the history records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    EndedByHost,
    EmptyTimeout,
    Expired,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::EndedByHost => "ended_by_host",
            EndReason::EmptyTimeout => "empty_timeout",
            EndReason::Expired => "expired",
        }
    }
}

/// Why a visit ended, as `participants.leave_reason` stores it: a short identifier (the room's
/// word for it, `left`, `connection_lost`, `meeting_ended`, ...). Anything else a controller
/// reports becomes [`LeaveReason::OTHER`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LeaveReason(String);

impl LeaveReason {
    /// The participant left on their own (`POST /{code}/leave`, or `leave` on the socket).
    pub const LEFT: &str = "left";
    /// The meeting's end closed the visit.
    pub const MEETING_ENDED: &str = "meeting_ended";
    /// What an unreadable reason becomes.
    pub const OTHER: &str = "other";

    /// `reason` when it is a short identifier (`[a-z_]{1,64}`), else `other`.
    pub fn bounded(reason: &str) -> Self {
        LeaveReason::parse(reason).unwrap_or_else(|| LeaveReason(Self::OTHER.to_owned()))
    }

    fn parse(reason: &str) -> Option<Self> {
        let plain = !reason.is_empty()
            && reason.len() <= 64
            && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        plain.then(|| LeaveReason(reason.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LeaveReason {
    type Error = String;

    fn try_from(reason: String) -> Result<Self, Self::Error> {
        LeaveReason::parse(&reason).ok_or_else(|| format!("not a leave reason: {reason:?}"))
    }
}

impl From<LeaveReason> for String {
    fn from(reason: LeaveReason) -> Self {
        reason.0
    }
}

/// Where a user's request came from: the client's address (the socket peer, or the
/// `X-Forwarded-For` address when GC trusts its proxy) and its user agent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Origin<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

/// Who made a change, and from where.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// A user, with the client address and user agent of their request.
    User { id: Uuid, from: Origin<'a> },
    /// A guest (a person without an account, DESIGN §12), by their guest id.
    Guest { id: Uuid, from: Origin<'a> },
    /// A meeting controller (by its client id), reporting for a room it owns.
    Service { id: &'a str },
    /// GC itself: timeouts, expiry.
    System,
}

impl Actor<'_> {
    /// `actor_id`, `actor_type`, `ip` and `user_agent` of an audit row.
    pub fn columns(&self) -> (Option<String>, &'static str, Option<IpAddr>, Option<&str>) {
        match *self {
            Actor::User { id, from } => (Some(id.to_string()), "user", from.ip, from.user_agent),
            Actor::Guest { id, from } => (Some(id.to_string()), "guest", from.ip, from.user_agent),
            Actor::Service { id } => (Some(id.to_owned()), "service", None, None),
            Actor::System => (None, "system", None, None),
        }
    }
}

/// An [`Actor`], owned: for work that outlives the request (a queued admission, a queued
/// create).
#[derive(Clone, Debug)]
pub enum OwnedActor {
    User {
        id: Uuid,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    },
    Guest {
        id: Uuid,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    },
    Service {
        id: String,
    },
    System,
}

impl From<Actor<'_>> for OwnedActor {
    fn from(actor: Actor<'_>) -> Self {
        match actor {
            Actor::User { id, from } => OwnedActor::User {
                id,
                ip: from.ip,
                user_agent: from.user_agent.map(str::to_owned),
            },
            Actor::Guest { id, from } => OwnedActor::Guest {
                id,
                ip: from.ip,
                user_agent: from.user_agent.map(str::to_owned),
            },
            Actor::Service { id } => OwnedActor::Service { id: id.to_owned() },
            Actor::System => OwnedActor::System,
        }
    }
}

impl OwnedActor {
    pub fn as_actor(&self) -> Actor<'_> {
        match self {
            OwnedActor::User { id, ip, user_agent } => Actor::User {
                id: *id,
                from: Origin {
                    ip: *ip,
                    user_agent: user_agent.as_deref(),
                },
            },
            OwnedActor::Guest { id, ip, user_agent } => Actor::Guest {
                id: *id,
                from: Origin {
                    ip: *ip,
                    user_agent: user_agent.as_deref(),
                },
            },
            OwnedActor::Service { id } => Actor::Service { id },
            OwnedActor::System => Actor::System,
        }
    }
}

/// One change to record: the event, the meeting it happened to (and its org), and who made it.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    pub org_id: Uuid,
    pub meeting_id: Uuid,
    pub actor: Actor<'a>,
    pub event: MeetingEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn every_event() -> Vec<MeetingEvent> {
        let user_id = Uuid::from_u128(7);
        vec![
            MeetingEvent::MeetingCreated {
                meeting_code: "AbCdEf012345".into(),
                max_participants: 10,
                idempotency_key: true,
            },
            MeetingEvent::MeetingStarted {},
            MeetingEvent::MeetingEnded {
                reason: EndReason::EmptyTimeout,
                participants_present: 2,
            },
            MeetingEvent::ParticipantAdmitted {
                user_id,
                role: MeetingRole::Guest,
            },
            MeetingEvent::ParticipantRejected { user_id },
            MeetingEvent::ParticipantWaiting { user_id },
            MeetingEvent::ParticipantLeft {
                user_id,
                reason: LeaveReason::bounded("connection_lost"),
            },
            MeetingEvent::SettingsChanged {
                before: json!({"max_participants": 2}),
                after: json!({"max_participants": 3}),
            },
        ]
    }

    #[test]
    fn every_event_reads_back_from_its_audit_row() {
        for event in every_event() {
            let details = event.details();
            assert!(details.is_object(), "{event:?}");
            assert_eq!(
                MeetingEvent::from_row(event.action(), details).expect("reads back"),
                event
            );
        }
    }

    #[test]
    fn the_audit_rows_keep_the_shapes_they_had() {
        let user_id = Uuid::from_u128(7);
        let admitted = MeetingEvent::ParticipantAdmitted {
            user_id,
            role: MeetingRole::Host,
        };
        assert_eq!(
            admitted.details(),
            json!({"user_id": user_id, "role": "host"})
        );
        let ended = MeetingEvent::MeetingEnded {
            reason: EndReason::EndedByHost,
            participants_present: 0,
        };
        assert_eq!(ended.action(), "meeting_ended");
        assert_eq!(
            ended.details(),
            json!({"reason": "ended_by_host", "participants_present": 0})
        );
        assert_eq!(MeetingEvent::MeetingStarted {}.details(), json!({}));
    }

    #[test]
    fn a_row_of_another_shape_is_not_an_event() {
        assert!(MeetingEvent::from_row("meeting_exploded", json!({})).is_err());
        assert!(MeetingEvent::from_row("participant_left", json!({"user_id": "x"})).is_err());
        assert!(
            MeetingEvent::from_row(
                "participant_rejected",
                json!({"user_id": Uuid::nil(), "email": "a@b.c"})
            )
            .is_err(),
            "a fact the event does not have"
        );
        assert!(
            MeetingEvent::from_row(
                "participant_left",
                json!({"user_id": Uuid::nil(), "reason": "Left; DROP"})
            )
            .is_err()
        );
    }

    #[test]
    fn a_leave_reason_is_a_short_identifier_or_other() {
        assert_eq!(LeaveReason::bounded("left").as_str(), "left");
        for odd in ["", "Left", "left\0", "lèft", &"a".repeat(65), "a-b"] {
            assert_eq!(
                LeaveReason::bounded(odd).as_str(),
                LeaveReason::OTHER,
                "{odd:?}"
            );
        }
        assert_eq!(LeaveReason::bounded(&"a".repeat(64)).as_str().len(), 64);
    }
}
