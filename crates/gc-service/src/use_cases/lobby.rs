//! The host's lobby: `POST /{code}/admit/{user_id}`, `/reject/{user_id}` and `/admit-all`.
//! Seats are taken by the room's atomic scripts, so concurrent admits never fill a room past
//! `max_participants`; every admission and rejection is audited.

use common::jwt::{MeetingRole, UserClaims};
use common::proto::internal::v1::{
    AdmitAllRequest, AdmitParticipantRequest, RejectParticipantRequest,
};
use uuid::Uuid;

use crate::db;
use crate::db::participants::Seated;
use crate::domain::events::{Actor, Change, MeetingEvent};
use crate::error::Error;
use crate::use_cases::room::Rooms;
use crate::use_cases::{
    parse_user_id, record_admissions, require_host, seat_number, visible_meeting,
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
    let meeting = visible_meeting(&rooms.pool, caller, code).await?;
    require_host(&meeting, caller)?;
    let user_id = parse_user_id(user_id)?;
    let response = rooms
        .call_if_assigned(&meeting, |room| async move {
            room.client
                .clone()
                .admit_participant(AdmitParticipantRequest {
                    meeting_code: room.code.clone(),
                    user_id: user_id.to_string(),
                    fencing_token: room.fencing_token,
                })
                .await
                .map(tonic::Response::into_inner)
        })
        .await?
        .ok_or(Error::MeetingNotFound)?;
    let seated = Seated {
        user_id,
        role: MeetingRole::Guest,
        seat: seat_number(response.seat)?,
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
    let meeting = visible_meeting(&rooms.pool, caller, code).await?;
    require_host(&meeting, caller)?;
    let user_id = parse_user_id(user_id)?;
    rooms
        .call_if_assigned(&meeting, |room| async move {
            room.client
                .clone()
                .reject_participant(RejectParticipantRequest {
                    meeting_code: room.code.clone(),
                    user_id: user_id.to_string(),
                    reason: REJECTED_BY_HOST.to_owned(),
                    fencing_token: room.fencing_token,
                })
                .await
        })
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
    let meeting = visible_meeting(&rooms.pool, caller, code).await?;
    require_host(&meeting, caller)?;
    let response = rooms
        .call_if_assigned(&meeting, |room| async move {
            room.client
                .clone()
                .admit_all(AdmitAllRequest {
                    meeting_code: room.code.clone(),
                    fencing_token: room.fencing_token,
                })
                .await
                .map(tonic::Response::into_inner)
        })
        .await?
        .unwrap_or_default();
    let admitted = parse_ids(&response.admitted)?;
    let still_waiting = parse_ids(&response.still_waiting)?;
    let rows = guest_seats(&admitted, &response.admitted_seats)?;
    record_admissions(rooms, &meeting, rows, actor).await?;
    Ok((admitted, still_waiting))
}

/// The guests a controller admitted from the lobby, with their seat numbers (`seats` in the
/// order of `admitted`).
pub fn guest_seats(admitted: &[Uuid], seats: &[u64]) -> Result<Vec<Seated>, Error> {
    if admitted.len() != seats.len() {
        return Err(Error::Internal(
            "a meeting controller reported admissions without their seats",
        ));
    }
    admitted
        .iter()
        .zip(seats)
        .map(|(user_id, seat)| {
            Ok(Seated {
                user_id: *user_id,
                role: MeetingRole::Guest,
                seat: seat_number(*seat)?,
            })
        })
        .collect()
}

/// User ids as a controller reports them.
pub fn parse_ids(ids: &[String]) -> Result<Vec<Uuid>, Error> {
    ids.iter()
        .map(|id| {
            Uuid::parse_str(id)
                .map_err(|_| Error::Internal("a meeting controller reported a malformed user id"))
        })
        .collect()
}
