//! `POST /{code}/leave`: the caller leaves the room or the lobby. Their visit is closed with
//! `left_at`, and when the room is left empty the empty-meeting clock starts.
//!
//! The room answers with the seat that ended (if any) and its last seat number, and
//! PostgreSQL is written from that answer ([`db::participants::record_leave`]): a join of the
//! same user racing this leave, whichever store it reaches first, leaves the visits agreeing with
//! the seats (issue 22).

use common::jwt::{MeetingRole, UserClaims};
use common::proto::internal::v1::{
    LeaveParticipantRequest, LeaveParticipantResponse, LeftFrom, ParticipantRole,
};
use uuid::Uuid;

use crate::db;
use crate::db::participants::{EndedSeat, Leave};
use crate::domain::events::{Actor, LeaveReason};
use crate::domain::meeting::Meeting;
use crate::error::Error;
use crate::use_cases::room::Rooms;
use crate::use_cases::{seat_number, visible};

/// `participants.leave_reason` of a participant who left on their own.
pub const LEFT: &str = LeaveReason::LEFT;

/// Leaves; leaving a meeting one is not in changes nothing and is not an error.
///
/// A caller who may no longer see the meeting (they came in while it allowed external
/// participants, and the host has turned that off since) may still leave it while they have a
/// visit open: otherwise they could not end the seat they hold. Anyone else gets the 404 of an
/// unknown meeting, so codes cannot be probed.
pub async fn leave(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
    actor: Actor<'_>,
) -> Result<(), Error> {
    let meeting = meeting_to_leave(rooms, caller, code).await?;
    rooms.come_or_go(caller.sub, meeting.id)?;
    let response = rooms
        .call_if_assigned(&meeting, |room| async move {
            room.client
                .clone()
                .leave_participant(LeaveParticipantRequest {
                    meeting_code: room.code.clone(),
                    user_id: caller.sub.to_string(),
                    reason: LEFT.to_owned(),
                    fencing_token: room.fencing_token,
                })
                .await
                .map(tonic::Response::into_inner)
        })
        .await?;
    let leave = match &response {
        Some(response) => room_leave(&meeting, caller.sub, LEFT, response)?,
        // No room: nobody is in it, and every visit still open is stale.
        None => Leave {
            meeting_id: meeting.id,
            org_id: meeting.org_id,
            user_id: caller.sub,
            reason: LEFT,
            left_at: None,
            seat: None,
            last_seat: 0,
            room_empty: false,
        },
    };
    db::participants::record_leave(&rooms.pool, &leave, actor).await?;
    Ok(())
}

async fn meeting_to_leave(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
) -> Result<Meeting, Error> {
    let parsed = common::meeting_code::MeetingCode::parse(code).ok_or(Error::MeetingNotFound)?;
    let found = db::meetings::find_by_code(&rooms.pool, &parsed).await?;
    if let Some(meeting) = &found
        && !meeting.status.is_ended()
        && !crate::use_cases::may_see(meeting, caller)
        && db::participants::has_open_visit(&rooms.pool, meeting.id, caller.sub).await?
    {
        return Ok(meeting.clone());
    }
    visible(found, caller)
}

/// What the room's answer to a leave means for PostgreSQL.
pub fn room_leave<'a>(
    meeting: &Meeting,
    user_id: Uuid,
    reason: &'a str,
    response: &LeaveParticipantResponse,
) -> Result<Leave<'a>, Error> {
    let from_room = LeftFrom::try_from(response.left_from) == Ok(LeftFrom::Room);
    let seat = match (&response.seat, from_room) {
        (Some(seat), true) => Some(EndedSeat {
            seat: seat_number(seat.number)?,
            role: meeting_role(seat.role),
            joined_at: seat.joined_at.as_ref().and_then(timestamp),
        }),
        _ => None,
    };
    Ok(Leave {
        meeting_id: meeting.id,
        org_id: meeting.org_id,
        user_id,
        reason,
        left_at: None,
        seat,
        last_seat: seat_number(response.last_seat)?,
        room_empty: response.remaining_participants == 0,
    })
}

/// A role as the room reports it; an unknown one is a guest (DESIGN §11: anyone who is not
/// the host).
pub fn meeting_role(role: i32) -> MeetingRole {
    match ParticipantRole::try_from(role) {
        Ok(ParticipantRole::Host) => MeetingRole::Host,
        _ => MeetingRole::Guest,
    }
}

/// A protobuf timestamp as a time, when it is one.
pub fn timestamp(t: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}
