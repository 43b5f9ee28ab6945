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
//!
//! A guest (a person without an account, DESIGN §12) joins the same way with their guest
//! token, and always waits in the lobby, unless the host let them in already: their reload
//! keeps their place. `guest-join` ([`super::guest_join`]) is their first join.

use common::display_name::DisplayName;
use common::error::ErrorCode;
use common::jwt::MeetingRole;
use uuid::Uuid;

use crate::auth::Participant;
use crate::clients::ac::{MeetingGrant, MeetingTokens};
use crate::clients::mc::Known;
use crate::db::controllers::Assignment;
use crate::domain::events::HostChangeReason;
use crate::domain::events::{Actor, Change, MeetingEvent, OwnedActor};
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
    /// A new guest's guest token, signed with their meeting token (guest-join only).
    pub guest_token: Option<String>,
}

/// The name others see when a token's name no longer passes the rules (AC checks names when
/// it stores them; this only guards against an older AC).
const FALLBACK_NAME: &str = "Participant";

/// Who joins a meeting they may see: a member, or a guest (a person without an account,
/// DESIGN §12).
#[derive(Clone, Debug)]
pub struct Joiner {
    pub id: Uuid,
    pub name: String,
    pub guest: bool,
    /// A member's org (`None` for a guest): only members of the meeting's org may host it.
    pub org_id: Option<Uuid>,
    /// A new guest (their guest-join), whose guest token AC signs with their meeting token.
    pub new_guest: bool,
}

impl Joiner {
    pub fn of(caller: &Participant) -> Self {
        Self {
            id: caller.id(),
            name: caller.name().to_owned(),
            guest: caller.is_guest(),
            org_id: match caller {
                Participant::Member(claims) => Some(claims.org_id),
                Participant::Guest(_) => None,
            },
            new_guest: false,
        }
    }
}

pub async fn join_meeting(
    rooms: &Rooms,
    meeting_tokens: &MeetingTokens,
    caller: &Participant,
    code: &str,
    actor: Actor<'_>,
) -> Result<Joined, Error> {
    let (meeting, assignment) = visible_meeting_located(rooms, caller, code).await?;
    rooms.come_or_go(caller.id(), meeting.id)?;
    // A join that leaves the caller waiting changes the lobby: it is recorded (and reaches the
    // org's webhooks as `lobby.waiting`) before the join answers, or the join fails and gives
    // the place up.
    let (org_id, meeting_id, user_id) = (meeting.org_id, meeting.id, caller.id());
    let waiting_actor = OwnedActor::from(actor);
    let guest = caller.is_guest();
    join_visible(
        rooms,
        meeting_tokens,
        meeting,
        assignment,
        Joiner::of(caller),
        actor,
        move |rooms: Rooms| async move {
            // A guest's place was recorded by their guest-join (`guest_joined`); coming back
            // to it is not a new one.
            if guest {
                return Ok(());
            }
            let waiting = Change {
                org_id,
                meeting_id,
                actor: waiting_actor.as_actor(),
                event: MeetingEvent::ParticipantWaiting { user_id },
            };
            crate::db::events::record(&rooms.pool, &[waiting]).await?;
            Ok(())
        },
    )
    .await
}

/// Joins `joiner` to a meeting they may see. `on_waiting` runs in the seat's own task when the
/// room put them in its lobby, before the join answers: a failure there leaves the lobby again
/// and fails the join (the guest-join records the guest there).
pub async fn join_visible<F, Fut>(
    rooms: &Rooms,
    meeting_tokens: &MeetingTokens,
    meeting: Meeting,
    assignment: Option<Assignment>,
    joiner: Joiner,
    actor: Actor<'_>,
    on_waiting: F,
) -> Result<Joined, Error>
where
    F: FnOnce(Rooms) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    let Joiner {
        id,
        name,
        guest,
        org_id,
        new_guest,
    } = joiner;
    let member = !guest && org_id == Some(meeting.org_id);
    // The role as PostgreSQL sees it, which the token states; the room decides (DESIGN §12:
    // its host may have changed since PostgreSQL last heard, and the creator takes the role
    // back by joining while nobody hosts). A guest is never the host: their id is one AC made
    // for them.
    let role = if !guest
        && (meeting.hosted_by(id) || (meeting.host_id.is_none() && meeting.creator_id == id))
    {
        MeetingRole::Host
    } else {
        MeetingRole::Guest
    };
    let name = DisplayName::parse(&name)
        .map(DisplayName::into_string)
        .unwrap_or_else(|_| FALLBACK_NAME.to_owned());
    let caller_id = id;

    // AC signs the token while MC seats the caller: the token does not depend on the
    // admission, and a join that fails drops its grant (unsent grants are left out of the
    // batch, a token already signed is never shown to anyone).
    let grant = MeetingGrant {
        user_id: caller_id,
        meeting_id: meeting.id,
        meeting_code: meeting.code.as_str().to_owned(),
        org_id: meeting.org_id,
        role,
        name: name.clone(),
        guest,
        guest_token: guest && new_guest,
    };
    // A new guest's tokens are signed while the room takes them, but the guest is recorded, and
    // their lobby place kept, only once AC has signed: were AC to fail after the room put them
    // in its lobby, they would wait there with no guest token to come back with, a place
    // nobody could ever take or give up. The seat's task waits for the tokens' outcome before
    // `on_waiting`, and a failure (or this request gone) gives the place up.
    let (signed_tx, mut signed_rx) = tokio::sync::watch::channel(None::<bool>);
    let on_waiting = move |rooms: Rooms| async move {
        if new_guest {
            let signed = loop {
                if let Some(signed) = *signed_rx.borrow_and_update() {
                    break signed;
                }
                if signed_rx.changed().await.is_err() {
                    break false;
                }
            };
            if !signed {
                return Err(Error::Internal("the guest's tokens were not signed"));
            }
        }
        on_waiting(rooms).await
    };
    let (Seating { joined, started }, issued) = {
        // The seat runs as a task of its own, which a client hanging up cannot cancel: once the
        // room may have seated the caller, the visit is recorded too, whether or not anyone is
        // still waiting for the answer (else Redis would hold a seat PostgreSQL never heard of).
        let seat = rooms.detached.run(seat(
            rooms.clone(),
            meeting.clone(),
            assignment,
            caller_id,
            role,
            name.clone(),
            guest.then_some(rooms.settings.max_guests_waiting),
            member,
            OwnedActor::from(actor),
            on_waiting,
        ));
        let token = async {
            let issued = meeting_tokens.issue(grant).await;
            let _ = signed_tx.send(Some(issued.is_ok()));
            issued
        };
        tokio::pin!(seat, token);
        // A failed seat ends the join at once (its grant is dropped), but a failed token never cuts
        // a member's seat short: MC and PostgreSQL are left agreeing, as they would be without
        // the token. A new guest's seat gives its place up when the tokens fail, and the
        // tokens' error is the answer.
        tokio::select! {
            seated = &mut seat => {
                let seated = seated?;
                (seated, token.await)
            }
            issued = &mut token => match (seat.await, issued) {
                (Err(_), Err(refused)) if new_guest => return Err(refused),
                (seated, issued) => (seated?, issued),
            },
        }
    };
    let issued = issued?;
    let role = joined.role.unwrap_or(role);
    // The room's word on who hosts, for the answer (the creator may just have taken the role
    // back).
    let mut meeting = meeting;
    if role == MeetingRole::Host {
        meeting.host_id = Some(caller_id);
    }
    tracing::info!(
        meeting_id = %meeting.id,
        user_id = %caller_id,
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
        guest_token: issued.guest_token,
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
#[allow(clippy::too_many_arguments)]
async fn seat<F, Fut>(
    rooms: Rooms,
    meeting: Meeting,
    assignment: Option<Assignment>,
    user_id: Uuid,
    role: MeetingRole,
    name: String,
    guest_cap: Option<u32>,
    member: bool,
    actor: OwnedActor,
    on_waiting: F,
) -> Result<Seating, Error>
where
    F: FnOnce(Rooms) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut joined = rooms
        .placement
        .join(
            &meeting,
            Known::from(assignment),
            user_id,
            role,
            &name,
            guest_cap,
            member,
        )
        .await?;
    let role = joined.role.unwrap_or(role);
    if joined.seat.is_none() {
        restore_lost_seat(&rooms, &meeting, user_id, &mut joined, &actor).await?;
    }
    if joined.admission == Admission::Waiting
        && let Err(error) = on_waiting(rooms.clone()).await
    {
        // Nobody will hear of this place in the lobby: it is given up, not left for the host
        // to admit someone who never got the answer.
        if let Err(leave) = rooms
            .placement
            .leave(
                &meeting,
                Known::NotRead,
                user_id,
                crate::use_cases::leave::LEFT,
            )
            .await
        {
            tracing::warn!(meeting_id = %meeting.id, error = %leave, "a lobby place whose join failed could not be given up");
        }
        return Err(error);
    }
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
    let host_change = match (joined.host_change, joined.host) {
        // The creator took the role back while nobody hosted.
        (Some(change), _) => Some((change, HostChangeReason::Reclaimed)),
        // The room changed its host and PostgreSQL never heard (the write failed after the
        // room made the change): recorded now.
        (None, Some(now)) if now.seq > meeting.host_seq => Some((now, HostChangeReason::Recovered)),
        _ => None,
    };
    if let Some((change, reason)) = host_change {
        crate::db::hosts::record_change(&rooms.pool, &meeting, change, reason, actor.as_actor())
            .await?;
    }
    Ok(Seating { joined, started })
}

/// A caller the room put in its lobby while PostgreSQL holds a visit of theirs open had their
/// seat lost by the room, not ended by a leave (a leave closes the visit): Redis restarted
/// empty, or a failover lost the write that seated them. The host admitted them already, so
/// they are seated again at once, and the admission of the new seat closes the old visit
/// (`superseded`). When the room has no seat left for them now, the old visit is closed
/// (`seat_lost`) and they wait like anyone else. One read of PostgreSQL, only for a join that
/// waits.
///
/// A leave whose record has not reached PostgreSQL yet (a socket's grace that just ran out,
/// reported a moment later) looks the same: someone who left by losing their connection and
/// joins again in that moment is seated without waiting, as they were before.
async fn restore_lost_seat(
    rooms: &Rooms,
    meeting: &Meeting,
    user_id: Uuid,
    joined: &mut RoomJoin,
    actor: &OwnedActor,
) -> Result<(), Error> {
    let Some(lost) = crate::db::participants::open_seat(&rooms.pool, meeting.id, user_id).await?
    else {
        return Ok(());
    };
    match rooms
        .placement
        .admit(meeting, Known::NotRead, user_id)
        .await
    {
        Ok(Some(seat)) => {
            tracing::warn!(
                meeting_id = %meeting.id,
                user_id = %user_id,
                lost_seat = lost,
                seat,
                "a seat the room had lost was given back"
            );
            crate::metrics::lost_seat(crate::metrics::lost_seat::RESTORED);
            joined.admission = Admission::Admitted;
            joined.seat = Some(seat);
            joined.participant_count = joined.participant_count.saturating_add(1);
            if let Some(lobby) = joined.lobby_count.as_mut() {
                *lobby = lobby.saturating_sub(1);
            }
            Ok(())
        }
        // No controller holds the meeting any more (it ended meanwhile): nothing to restore.
        Ok(None) => Ok(()),
        // They are no longer in the lobby: they left (or the host let them in, or turned them
        // away) since the room answered. The join happened before that, as it answered; the
        // leave closes the old visit, an admission records the new seat.
        Err(Error::Api(refused)) if refused.code == ErrorCode::NotFound => Ok(()),
        Err(Error::Api(refused)) if refused.code == ErrorCode::MeetingFull => {
            tracing::warn!(
                meeting_id = %meeting.id,
                user_id = %user_id,
                lost_seat = lost,
                "a seat the room had lost could not be given back (the room is full): its visit is closed"
            );
            crate::metrics::lost_seat(crate::metrics::lost_seat::CLOSED);
            let leave = crate::db::participants::Leave {
                meeting_id: meeting.id,
                org_id: meeting.org_id,
                user_id,
                reason: LOST_SEAT,
                left_at: None,
                seat: None,
                last_seat: lost.unwrap_or(0),
                room_empty: false,
            };
            crate::db::participants::record_leave(&rooms.pool, &leave, actor.as_actor()).await?;
            Ok(())
        }
        Err(other) => Err(other),
    }
}

/// The leave reason of a visit whose seat the room lost and could not give back.
pub const LOST_SEAT: &str = "seat_lost";
