//! `GET /{code}`: the meeting with its live counts. Only the host learns how many wait.

use crate::auth::Participant;
use crate::domain::meeting::Meeting;
use crate::error::Error;
use crate::use_cases::room::Rooms;
use crate::use_cases::visible_meeting;

pub use crate::domain::room::Counts;

/// A meeting as its caller may see it.
#[derive(Debug)]
pub struct MeetingView {
    pub meeting: Meeting,
    pub counts: Counts,
    /// The caller is the host (who alone sees the lobby).
    pub for_host: bool,
}

pub async fn get_meeting(
    rooms: &Rooms,
    caller: &Participant,
    code: &str,
) -> Result<MeetingView, Error> {
    let meeting = visible_meeting(&rooms.pool, caller, code).await?;
    let counts = live_counts(rooms, &meeting).await;
    Ok(MeetingView {
        // A guest's id is one AC made for them: never the host's.
        for_host: !caller.is_guest() && meeting.hosted_by(caller.id()),
        meeting,
        counts,
    })
}

/// The room's counts; zero for a meeting no controller holds yet. When the owner cannot be
/// asked, the visits GC has recorded stand in (the lobby then reads 0): a read should not fail
/// because a controller is slow.
pub async fn live_counts(rooms: &Rooms, meeting: &Meeting) -> Counts {
    match room_counts(rooms, meeting).await {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!(meeting_id = %meeting.id, %error, "live counts unavailable, using recorded visits");
            let open = crate::db::participants::open_count(&rooms.pool, meeting.id)
                .await
                .unwrap_or(0);
            Counts {
                participants: u32::try_from(open).unwrap_or(0),
                lobby: 0,
            }
        }
    }
}

async fn room_counts(rooms: &Rooms, meeting: &Meeting) -> Result<Counts, Error> {
    match rooms.placement.current(meeting).await? {
        Some(room) => room.counts().await,
        None => Ok(Counts::default()),
    }
}
