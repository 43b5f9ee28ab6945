//! `POST /{code}/join`: a seat in the room or a place in the lobby, and the meeting token and
//! signaling URL to go live with.
//!
//! The host, and everyone when the waiting room is off, is admitted (if a seat is free: else
//! 409 MEETING_FULL); others wait in the lobby. Joining again while present answers the same
//! again: the room's script is idempotent, and the visit is recorded once.
//!
//! The answer's meeting is built from what the join's own steps said: the room's counts (the
//! lobby too, for the host) from its join script, the meeting's status and start from the
//! admission statement. Neither the room nor the meeting is read a second time.

use common::display_name::DisplayName;
use common::jwt::{MeetingRole, UserClaims};
use uuid::Uuid;

use crate::clients::ac::{MeetingGrant, MeetingTokens};
use crate::clients::mc::Known;
use crate::db::controllers::Assignment;
use crate::domain::events::{Actor, OwnedActor};
use crate::domain::meeting::{Meeting, MeetingStart};
pub use crate::domain::room::Admission;
use crate::domain::room::{RoomJoin, Seated};
use crate::error::Error;
use crate::use_cases::get::{Counts, MeetingView};
use crate::use_cases::room::Rooms;
use crate::use_cases::{record_admissions, visible_meeting_located};

#[derive(Debug)]
pub struct Joined {
    pub admission: Admission,
    pub role: MeetingRole,
    pub meeting_token: String,
    pub expires_in: u64,
    pub signaling_url: String,
    pub view: MeetingView,
}

/// The name others see when a token's name no longer passes the rules (AC checks names when
/// it stores them; this only guards against an older AC).
const FALLBACK_NAME: &str = "Participant";

pub async fn join_meeting(
    rooms: &Rooms,
    meeting_tokens: &MeetingTokens,
    caller: &UserClaims,
    code: &str,
    actor: Actor<'_>,
) -> Result<Joined, Error> {
    let (meeting, assignment) = visible_meeting_located(rooms, caller, code).await?;
    rooms.come_or_go(caller.sub, meeting.id)?;
    let role = if meeting.host_id == caller.sub {
        MeetingRole::Host
    } else {
        MeetingRole::Guest
    };
    let name = DisplayName::parse(&caller.name)
        .map(DisplayName::into_string)
        .unwrap_or_else(|_| FALLBACK_NAME.to_owned());

    // AC signs the token while MC seats the caller: the token does not depend on the
    // admission, and a join that fails drops its grant (unsent grants are left out of the
    // batch, a token already signed is never shown to anyone).
    let grant = MeetingGrant {
        user_id: caller.sub,
        meeting_id: meeting.id,
        meeting_code: meeting.code.as_str().to_owned(),
        org_id: meeting.org_id,
        role,
        name: name.clone(),
    };
    let (Seating { joined, started }, issued) = {
        // The seat runs as a task of its own, which a client hanging up cannot cancel: once the
        // room may have seated the caller, the visit is recorded too, whether or not anyone is
        // still waiting for the answer (else Redis would hold a seat PostgreSQL never heard of).
        let seat = rooms.detached.run(seat(
            rooms.clone(),
            meeting.clone(),
            assignment,
            caller.sub,
            role,
            name.clone(),
            OwnedActor::from(actor),
        ));
        let token = meeting_tokens.issue(grant);
        tokio::pin!(seat, token);
        // A failed seat ends the join at once (its grant is dropped), but a failed token never cuts
        // a seat short: MC and PostgreSQL are left agreeing, as they would be without the token.
        tokio::select! {
            seated = &mut seat => {
                let seated = seated?;
                (seated, token.await)
            }
            issued = &mut token => (seat.await?, issued),
        }
    };
    let issued = issued?;
    tracing::info!(
        meeting_id = %meeting.id,
        user_id = %caller.sub,
        role = role.as_str(),
        admission = joined.admission.as_str(),
        "participant joined"
    );
    let for_host = role == MeetingRole::Host;
    // The room counted its seats and its lobby in the step that seated the caller; only the
    // host is shown the lobby.
    let counts = match (for_host, joined.lobby_count) {
        (false, _) => Counts {
            participants: joined.participant_count,
            lobby: 0,
        },
        (true, Some(lobby)) => Counts {
            participants: joined.participant_count,
            lobby,
        },
        // A controller older than `lobby_count` (a rolling update): the room is asked.
        (true, None) => crate::use_cases::get::live_counts(rooms, &meeting).await,
    };
    // The meeting as this join left it. The admission answers the status and start it recorded
    // (the first makes a scheduled meeting active); a caller left waiting changed nothing and
    // sees the meeting as it was read. An admission that recorded nothing found the meeting
    // ended (an end raced this join): it is read again, to show it as it is.
    let meeting = match (joined.admission, started) {
        (_, Some(start)) => meeting.admitted(start),
        (Admission::Waiting, None) => meeting,
        (Admission::Admitted, None) => crate::db::meetings::find_meeting(&rooms.pool, meeting.id)
            .await?
            .unwrap_or(meeting),
    };
    Ok(Joined {
        admission: joined.admission,
        role,
        meeting_token: issued.token,
        expires_in: issued.expires_in,
        signaling_url: joined.signaling_url,
        view: MeetingView {
            meeting,
            counts,
            for_host,
        },
    })
}

/// What [`seat`] did: the room's answer, and the meeting's status and start as the admission
/// recorded them (`None` when the caller waits, or the meeting had ended).
struct Seating {
    joined: RoomJoin,
    started: Option<MeetingStart>,
}

/// Seats `user_id` in the meeting's room (or its lobby) and, when the room admitted them,
/// records the visit.
async fn seat(
    rooms: Rooms,
    meeting: Meeting,
    assignment: Option<Assignment>,
    user_id: Uuid,
    role: MeetingRole,
    name: String,
    actor: OwnedActor,
) -> Result<Seating, Error> {
    let joined = rooms
        .placement
        .join(&meeting, Known::from(assignment), user_id, role, &name)
        .await?;
    let mut started = None;
    if let Some(seat) = joined.seat {
        // Recorded also when the room says the caller was seated already: a visit GC missed (a
        // crash after the room seated them) is recorded now. The seat's number keeps a leave
        // that raced this join from being undone: if it ended the seat first, its row is there
        // closed, and this records nothing.
        let seated = Seated {
            user_id,
            role,
            seat,
        };
        started = record_admissions(&rooms, &meeting, vec![seated], actor.as_actor()).await?;
    }
    Ok(Seating { joined, started })
}
