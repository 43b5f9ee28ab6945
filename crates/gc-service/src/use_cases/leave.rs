//! `POST /{code}/leave`: the caller leaves the room or the lobby. Their visit is closed with
//! `left_at`, and when the room is left empty the empty-meeting clock starts.
//!
//! The room answers with the seat that ended (if any) and its last seat number, and
//! PostgreSQL is written from that answer ([`db::participants::record_leave`]): a join of the
//! same user racing this leave, whichever store it reaches first, leaves the visits agreeing with
//! the seats (issue 22).

use uuid::Uuid;

use crate::auth::Participant;
use crate::clients::mc::Known;
use crate::db;
use crate::db::participants::Leave;
use crate::domain::events::{Actor, HostChangeReason, LeaveReason};
use crate::domain::meeting::Meeting;
use crate::domain::room::RoomLeave;
use crate::error::Error;
use crate::use_cases::room::Rooms;
use crate::use_cases::visible;

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
    caller: &Participant,
    code: &str,
    actor: Actor<'_>,
) -> Result<(), Error> {
    let (meeting, known) = meeting_to_leave(rooms, caller, code).await?;
    rooms.come_or_go(caller.id(), meeting.id)?;
    let left = rooms
        .placement
        .leave(&meeting, known, caller.id(), LEFT)
        .await?;
    let host_change = left.as_ref().and_then(|left| left.host_change);
    let leave = match left {
        Some(left) => room_leave(&meeting, caller.id(), LEFT, left),
        // No room: nobody is in it, and every visit still open is stale.
        None => Leave {
            meeting_id: meeting.id,
            org_id: meeting.org_id,
            user_id: caller.id(),
            reason: LEFT,
            left_at: None,
            seat: None,
            last_seat: 0,
            room_empty: false,
        },
    };
    db::participants::record_leave(&rooms.pool, &leave, actor).await?;
    if let Some(change) = host_change {
        // The host left while others stayed: the room passed the role on (DESIGN §12).
        db::hosts::record_change(
            &rooms.pool,
            &meeting,
            change,
            HostChangeReason::Succession,
            actor,
        )
        .await?;
    }
    Ok(())
}

async fn meeting_to_leave(
    rooms: &Rooms,
    caller: &Participant,
    code: &str,
) -> Result<(Meeting, Known), Error> {
    let parsed = common::meeting_code::MeetingCode::parse(code).ok_or(Error::MeetingNotFound)?;
    // The meeting and its assignment in one round trip (shared with other joins' reads).
    let (found, assignment) = match rooms.lookups.find(parsed).await? {
        Some((meeting, assignment)) => (Some(meeting), assignment),
        None => (None, None),
    };
    if let Some(meeting) = &found
        && !meeting.status.is_ended()
        && !crate::use_cases::may_see(meeting, caller)
        && db::participants::has_open_visit(&rooms.pool, meeting.id, caller.id()).await?
    {
        return Ok((meeting.clone(), Known::from(assignment)));
    }
    Ok((visible(found, caller)?, Known::from(assignment)))
}

/// What the room's answer to a leave means for PostgreSQL.
pub fn room_leave<'a>(
    meeting: &Meeting,
    user_id: Uuid,
    reason: &'a str,
    left: RoomLeave,
) -> Leave<'a> {
    Leave {
        meeting_id: meeting.id,
        org_id: meeting.org_id,
        user_id,
        reason,
        left_at: None,
        seat: left.seat,
        last_seat: left.last_seat,
        room_empty: left.room_empty,
    }
}
