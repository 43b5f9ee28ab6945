//! `POST /{code}/end` (the host), and the endings housekeeping decides (empty timeout,
//! expiry): the meeting becomes `ended` with `ended_at`, every open visit is closed, the org's
//! place is given back (by the database's trigger), the `meeting_ended` audit row is written,
//! all in one statement (`db::meetings::END_SQL`); then the room is ended on its controller,
//! which tells everyone and deletes its live state. Ending an ended meeting changes nothing and returns it as it is.

use common::jwt::UserClaims;
use common::meeting_code::MeetingCode;

use crate::clients::mc::Known;
use crate::db;
use crate::domain::events::Actor;
pub use crate::domain::events::EndReason;
use crate::domain::meeting::Meeting;
use crate::error::Error;
use crate::use_cases::room::Rooms;
use crate::use_cases::{may_see, require_host};

/// The host ends their meeting.
pub async fn end_by_host(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
    actor: Actor<'_>,
) -> Result<Meeting, Error> {
    let code = MeetingCode::parse(code).ok_or(Error::MeetingNotFound)?;
    // The meeting and its assignment in one round trip (shared with other joins' reads).
    let (meeting, assignment) = rooms
        .lookups
        .find(code)
        .await?
        .filter(|(m, _)| may_see(m, caller))
        .ok_or(Error::MeetingNotFound)?;
    require_host(&meeting, caller)?;
    let known = Known::from(assignment);
    end(rooms, meeting, known, EndReason::EndedByHost, actor).await
}

/// Ends `meeting` (idempotent).
pub async fn end(
    rooms: &Rooms,
    meeting: Meeting,
    known: Known,
    reason: EndReason,
    actor: Actor<'_>,
) -> Result<Meeting, Error> {
    if meeting.status.is_ended() {
        return Ok(meeting);
    }
    // The room's owner, read before the assignment goes with the ending.
    let room = rooms
        .placement
        .current_known(&meeting, known)
        .await
        .unwrap_or(None);
    let Some((ended, _closed)) =
        db::meetings::end_and_record(&rooms.pool, meeting.id, reason, actor).await?
    else {
        // Another request ended it first.
        return Ok(db::meetings::find_meeting(&rooms.pool, meeting.id)
            .await?
            .unwrap_or(meeting));
    };
    tracing::info!(meeting_id = %meeting.id, reason = reason.as_str(), "meeting ended");

    // PostgreSQL says it ended, whatever the controller answers: an unreachable one loses the
    // room to its safety TTL, and its clients to their next call.
    if let Some(room) = room
        && let Err(error) = room.end(reason.as_str()).await
    {
        tracing::warn!(meeting_id = %meeting.id, %error, "the meeting's controller did not end its room");
    }
    Ok(ended)
}
