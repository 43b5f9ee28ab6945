//! The host's lobby: `POST /{code}/admit/{user_id}`, `/reject/{user_id}` and `/admit-all`.
//! Seats are taken by the room's atomic scripts, so concurrent admits never fill a room past
//! `max_participants`; every admission and rejection is audited.

use common::jwt::{MeetingRole, UserClaims};
use uuid::Uuid;

use crate::clients::mc::Known;
use crate::db;
use crate::db::participants::Seated;
use crate::domain::events::{Actor, Change, MeetingEvent};
use crate::error::Error;
use crate::use_cases::room::Rooms;
use crate::use_cases::{
    hosted_meeting_located, record_admissions, require_host, visible_meeting_located,
};

/// Why a rejected user is told they were refused.
pub const REJECTED_BY_HOST: &str = "rejected_by_host";

/// Admits a waiting user (404 when they are not waiting; 409 MEETING_FULL without a seat).
pub async fn admit(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
    user_id: &str,
    actor: Actor<'_>,
) -> Result<Uuid, Error> {
    let (meeting, assignment, user_id) =
        hosted_meeting_located(rooms, caller, code, user_id).await?;
    let seat = rooms
        .placement
        .admit(&meeting, Known::from(assignment), user_id)
        .await?
        .ok_or(Error::MeetingNotFound)?;
    let seated = Seated {
        user_id,
        role: MeetingRole::Guest,
        seat,
    };
    record_admissions(rooms, &meeting, vec![seated], actor).await?;
    Ok(user_id)
}

/// Refuses a waiting user (404 when they are not waiting).
pub async fn reject(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
    user_id: &str,
    actor: Actor<'_>,
) -> Result<Uuid, Error> {
    let (meeting, assignment, user_id) =
        hosted_meeting_located(rooms, caller, code, user_id).await?;
    rooms
        .placement
        .reject(&meeting, Known::from(assignment), user_id, REJECTED_BY_HOST)
        .await?
        .ok_or(Error::MeetingNotFound)?;
    let change = Change {
        org_id: meeting.org_id,
        meeting_id: meeting.id,
        actor,
        event: MeetingEvent::ParticipantRejected { user_id },
    };
    db::events::record(&rooms.pool, &[change]).await?;
    Ok(user_id)
}

/// Admits everyone waiting, longest waiting first, while seats remain.
pub async fn admit_all(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
    actor: Actor<'_>,
) -> Result<(Vec<Uuid>, Vec<Uuid>), Error> {
    let (meeting, assignment) = visible_meeting_located(rooms, caller, code).await?;
    require_host(&meeting, caller)?;
    let all = rooms
        .placement
        .admit_all(&meeting, Known::from(assignment))
        .await?;
    let admitted = all.admitted.iter().map(|seated| seated.user_id).collect();
    record_admissions(rooms, &meeting, all.admitted, actor).await?;
    let still_waiting = all.still_waiting;
    Ok((admitted, still_waiting))
}
