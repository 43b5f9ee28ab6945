//! `POST /{code}/leave`: the caller leaves the room or the lobby. Their visit is closed with
//! `left_at`, and when the room is left empty the empty-meeting clock starts.

use common::jwt::UserClaims;
use common::proto::internal::v1::{LeaveParticipantRequest, LeftFrom};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db;
use crate::db::audit::Actor;
use crate::domain::meeting::Meeting;
use crate::error::Error;
use crate::use_cases::room::Rooms;
use crate::use_cases::visible_meeting;

/// `participants.leave_reason` of a participant who left on their own.
pub const LEFT: &str = "left";

/// Leaves; leaving a meeting one is not in changes nothing and is not an error.
pub async fn leave(
    rooms: &Rooms,
    caller: &UserClaims,
    code: &str,
    actor: Actor<'_>,
) -> Result<(), Error> {
    let meeting = visible_meeting(&rooms.pool, caller, code).await?;
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
    let from_room = response
        .as_ref()
        .is_some_and(|r| LeftFrom::try_from(r.left_from) == Ok(LeftFrom::Room));
    let remaining = response.map_or(0, |r| r.remaining_participants);
    record_leave(
        &rooms.pool,
        &meeting,
        caller.sub,
        from_room,
        remaining,
        actor,
    )
    .await
}

/// Records a leave in PostgreSQL, in one transaction: the visit closed, its `participant_left`
/// audit row (when the caller was in the room or had a visit open), and, when the room was left
/// empty, the empty-meeting clock started.
pub async fn record_leave(
    pool: &PgPool,
    meeting: &Meeting,
    user_id: Uuid,
    from_room: bool,
    remaining: u32,
    actor: Actor<'_>,
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    // The meeting's row before the visit's, in the order an admission takes them (it
    // share-locks the meeting, then inserts the visit): the other way round, a leave that closed
    // the visit and then waited for the meeting deadlocked with a join of the same user that
    // held the meeting and waited for the closed visit.
    if from_room && remaining == 0 {
        db::meetings::mark_empty(&mut tx, meeting.id, None).await?;
    }
    let closed = db::participants::close_visit(&mut tx, meeting.id, user_id, LEFT, None).await?;
    if from_room || closed {
        db::audit::record(
            &mut tx,
            meeting.org_id,
            actor,
            "participant_left",
            meeting.id,
            serde_json::json!({ "user_id": user_id, "reason": LEFT }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
