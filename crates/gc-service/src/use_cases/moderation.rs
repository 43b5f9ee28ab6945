//! The host's moderation (DESIGN §12): `POST /{code}/remove/{user_id}` takes a member or a
//! guest out of the meeting, seated or waiting.
//!
//! The room decides and remembers: its script takes the person out, tells their sockets
//! `removed` (closed with 4403), tells the room or the host they went (`participant.left` or
//! `lobby.left`, reason `removed_by_host`), and refuses their later joins and sockets until
//! the meeting ends (403 `REMOVED_FROM_MEETING`). PostgreSQL is then written from the room's
//! answer as for a leave (their visit closed with that reason), and the host's act is recorded
//! as `participant_removed`.

use common::error::{ApiError, ErrorCode};
use common::jwt::UserClaims;
use uuid::Uuid;

use crate::clients::mc::Known;
use crate::db;
use crate::domain::events::{Actor, Change, MeetingEvent};
use crate::error::Error;
use crate::use_cases::hosted_meeting_located;
use crate::use_cases::leave::room_leave;
use crate::use_cases::room::Rooms;

/// `participants.leave_reason` of a visit the host ended, and what the removed person and the
/// room are told.
pub const REMOVED_BY_HOST: &str = "removed_by_host";

/// Removes `user_id` from the meeting; answers their id. Removing someone again, or someone
/// who is neither seated nor waiting, changes nothing but the room's memory of them and
/// answers the same.
pub async fn remove(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
    user_id: &str,
    actor: Actor<'_>,
) -> Result<Uuid, Error> {
    let (meeting, assignment, user_id) =
        hosted_meeting_located(rooms, caller, code, user_id).await?;
    if meeting.hosted_by(user_id) {
        return Err(Error::Api(ApiError::new(
            ErrorCode::Conflict,
            "the host cannot be removed; hand the meeting over first",
        )));
    }
    let Some(left) = rooms
        .placement
        .remove(&meeting, Known::from(assignment), user_id, REMOVED_BY_HOST)
        .await?
    else {
        // No controller holds the meeting: nobody is in it, so there is nobody to remove.
        return Err(Error::Api(ApiError::new(
            ErrorCode::NotFound,
            "the user is not in this meeting",
        )));
    };
    let leave = room_leave(&meeting, user_id, REMOVED_BY_HOST, left);
    db::participants::record_leave(&rooms.pool, &leave, actor).await?;
    let change = Change {
        org_id: meeting.org_id,
        meeting_id: meeting.id,
        actor,
        event: MeetingEvent::ParticipantRemoved { user_id },
    };
    db::events::record(&rooms.pool, &[change]).await?;
    tracing::info!(meeting_id = %meeting.id, user_id = %user_id, "participant removed by the host");
    Ok(user_id)
}
