//! GC's operations on meetings, one module per use case, independent of the transport that
//! calls them: each takes its dependencies and the authenticated caller as arguments and
//! returns [`crate::error::Error`], so the REST handlers in `routes/` and the gRPC methods in
//! `grpc.rs` are thin adapters over the same code.
//!
//! Which store is the truth for what: PostgreSQL for the meeting itself (status, settings,
//! times), the history of visits and the audit log; the meeting controller's Redis room for
//! who is present right now (seats and lobby). A change that touches both writes first the
//! store that decides: join, admit, reject and leave change the room first (its scripts enforce
//! capacity and the lobby atomically), then PostgreSQL in one transaction with the change's
//! events (`db::events`); a settings change and the end of a meeting change PostgreSQL first
//! (settings merged under the row's lock with a new version; the end in one statement) and
//! reach the room after the commit. A crash between the two is repaired by a later step: a seat GC never recorded is
//! recorded when the same user joins or is admitted again (the room answers "admitted", and
//! the visit is opened if none is), or when MC reports the participant gone (its report
//! carries `joined_at` and the role); a meeting GC ended whose room survived loses the room to
//! its safety TTL. See `docs/meeting-controllers.md`.

pub mod config;
pub mod controllers;
pub mod create;
pub mod deliveries;
pub mod detached;
pub mod end;
pub mod get;
pub mod guest_join;
pub mod history;
pub mod housekeeping;
pub mod join;
pub mod leave;
pub mod lobby;
pub mod moderation;
pub mod room;
pub mod webhooks;

use common::jwt::UserClaims;
use common::meeting_code::MeetingCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::Participant;
use crate::db;
use crate::db::controllers::Assignment;
use crate::domain::events::Actor;
use crate::domain::meeting::{Meeting, MeetingStart, admits_guests};
use crate::error::Error;

/// Someone a meeting may be shown to: a signed-in user, or a [`Participant`] of one of the
/// routes guests may use.
pub trait Caller {
    /// The user id, or the guest id.
    fn id(&self) -> Uuid;
    /// Whether the meeting is theirs to see (its status aside).
    fn may_see(&self, meeting: &Meeting) -> bool;
}

impl Caller for UserClaims {
    fn id(&self) -> Uuid {
        self.sub
    }

    /// Members of the meeting's org, or anyone when it allows external participants.
    fn may_see(&self, meeting: &Meeting) -> bool {
        meeting.org_id == self.org_id || meeting.settings.allow_external_participants
    }
}

impl Caller for Participant {
    fn id(&self) -> Uuid {
        Participant::id(self)
    }

    /// A guest sees only the meeting their token was signed for, and only while it takes
    /// guests (the host may turn that off meanwhile).
    fn may_see(&self, meeting: &Meeting) -> bool {
        match self {
            Participant::Member(claims) => claims.may_see(meeting),
            Participant::Guest(claims) => {
                claims.meeting_code == meeting.code.as_str()
                    && claims.org_id == meeting.org_id
                    && admits_guests(&meeting.settings)
            }
        }
    }
}

/// The live meeting `code` names, if `caller` may see it ([`Caller::may_see`]). Unknown, ended
/// and hidden meetings are the same 404.
pub async fn visible_meeting<C: Caller>(
    pool: &PgPool,
    caller: &C,
    code: &str,
) -> Result<Meeting, Error> {
    let code = MeetingCode::parse(code).ok_or(Error::MeetingNotFound)?;
    let meeting = db::meetings::find_by_code(pool, &code).await?;
    visible(meeting, caller)
}

/// [`visible_meeting`] with the meeting's assignment read in the same round trip, for
/// [`room::Rooms::call_located`]; the read may share its statement with other joins'
/// ([`db::lookups`]).
pub async fn visible_meeting_located<C: Caller>(
    rooms: &room::Rooms,
    caller: &C,
    code: &str,
) -> Result<(Meeting, Option<Assignment>), Error> {
    let code = MeetingCode::parse(code).ok_or(Error::MeetingNotFound)?;
    let (meeting, assignment) = rooms
        .lookups
        .find(code)
        .await?
        .ok_or(Error::MeetingNotFound)?;
    Ok((visible(Some(meeting), caller)?, assignment))
}

pub(crate) fn visible<C: Caller>(meeting: Option<Meeting>, caller: &C) -> Result<Meeting, Error> {
    let meeting = meeting.ok_or(Error::MeetingNotFound)?;
    if !caller.may_see(&meeting) || meeting.status.is_ended() {
        return Err(Error::MeetingNotFound);
    }
    Ok(meeting)
}

/// [`Caller::may_see`].
pub fn may_see<C: Caller>(meeting: &Meeting, caller: &C) -> bool {
    caller.may_see(meeting)
}

/// [`visible_meeting_located`] for a host's action on someone (admit, reject, remove): the
/// meeting, its assignment and the person's id, once the caller is known to be its host (403
/// otherwise; a malformed id is the 404 of nobody, checked after the right).
pub async fn hosted_meeting_located(
    rooms: &room::Rooms,
    caller: &UserClaims,
    code: &str,
    user_id: &str,
) -> Result<(Meeting, Option<Assignment>, Uuid), Error> {
    let (meeting, assignment) = visible_meeting_located(rooms, caller, code).await?;
    require_host(&meeting, caller)?;
    let user_id = parse_user_id(user_id)?;
    Ok((meeting, assignment, user_id))
}

/// Refuses (403) a caller who is not the meeting's host.
pub fn require_host(meeting: &Meeting, caller: &UserClaims) -> Result<(), Error> {
    if meeting.hosted_by(caller.sub) {
        Ok(())
    } else {
        Err(Error::NotHost)
    }
}

/// Records seats the room has just given: a visit each (unless the seat's row exists: its
/// leave came first), the meeting `active` from its first admission, the empty-meeting clock
/// stopped, and one `participant_admitted` audit row per new visit; all in one call, which other
/// admissions may share ([`db::admissions`]). Returns once it is committed, with the meeting's
/// status and start as the admission left them (`None` when nothing was recorded: no seats, or
/// the meeting has ended).
pub async fn record_admissions(
    rooms: &room::Rooms,
    meeting: &Meeting,
    admitted: Vec<db::participants::Seated>,
    actor: Actor<'_>,
) -> Result<Option<MeetingStart>, Error> {
    let recorded = rooms
        .admissions
        .record(meeting.id, meeting.org_id, admitted, actor)
        .await?;
    Ok(recorded.map(|m| m.start))
}

/// Parses a user id from a path or a controller's report; a malformed one names nobody (404).
pub fn parse_user_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::MeetingNotFound)
}
