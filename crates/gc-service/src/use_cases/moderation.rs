//! The host's moderation (DESIGN §12): `POST /{code}/remove/{user_id}` takes a member or a
//! guest out of the meeting, seated or waiting.
//!
//! The room decides and remembers: its script takes the person out, tells their sockets
//! `removed` (closed with 4403), tells the room or the host they went (`participant.left` or
//! `lobby.left`, reason `removed_by_host`), and refuses their later joins and sockets until
//! the meeting ends (403 `REMOVED_FROM_MEETING`). PostgreSQL is then written from the room's
//! answer as for a leave (their visit closed with that reason), and the host's act is recorded
//! as `participant_removed`.
//!
//! `POST /{code}/host/{user_id}` hands the host role to a seated member of the meeting's org.
//! The room decides, as a compare-and-set on its host (`transfer_host.lua`): of two hand-overs,
//! or a hand-over and the host's leave, one wins and the other finds another host (403). The
//! change is then recorded under the room's number for it (`db::hosts`).

use common::error::{ApiError, ErrorCode};
use common::jwt::UserClaims;
use uuid::Uuid;

use crate::clients::mc::Known;
use crate::db;
use crate::domain::events::{Actor, Change, HostChangeReason, MeetingEvent};
use crate::error::Error;
use crate::use_cases::get::{MeetingView, live_counts};
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

/// The message of a hand-over to someone the room will not make the host.
const NOT_SEATED: &str = "the new host must be seated in the meeting";

/// Hands the host role to `user_id`, a seated member of the meeting's org (DESIGN §12); the
/// meeting as it is afterwards, as the caller (no longer its host) sees it. Handing it to the
/// host themselves changes nothing.
pub async fn hand_over(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
    user_id: &str,
    actor: Actor<'_>,
) -> Result<MeetingView, Error> {
    let (meeting, assignment, to) = hosted_meeting_located(rooms, caller, code, user_id).await?;
    let change = match rooms
        .placement
        .transfer_host(&meeting, Known::from(assignment), caller.sub, to)
        .await?
    {
        Some(Ok(change)) => change,
        Some(Err(host)) => {
            // The room's host is another (a succession or a hand-over PostgreSQL has not
            // recorded yet, or the caller's own hand-over answered 503 after the room made
            // it): recorded now, then refused.
            if host.seq > meeting.host_seq {
                db::hosts::record_change(
                    &rooms.pool,
                    &meeting,
                    host,
                    HostChangeReason::Recovered,
                    actor,
                )
                .await?;
            }
            return Err(Error::NotHost);
        }
        // No controller holds the meeting: nobody is seated in it.
        None => return Err(Error::Api(ApiError::new(ErrorCode::Conflict, NOT_SEATED))),
    };
    if change.seq > 0 {
        db::hosts::record_change(
            &rooms.pool,
            &meeting,
            change,
            HostChangeReason::HandedOver,
            actor,
        )
        .await?;
    }
    tracing::info!(meeting_id = %meeting.id, from = %caller.sub, to = %to, "host role handed over");
    let meeting = db::meetings::find_meeting(&rooms.pool, meeting.id)
        .await?
        .unwrap_or(meeting);
    let for_host = meeting.hosted_by(caller.sub);
    let mut counts = live_counts(rooms, &meeting).await;
    if !for_host {
        counts.lobby = 0;
    }
    Ok(MeetingView {
        meeting,
        counts,
        for_host,
    })
}
