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
pub mod detached;
pub mod end;
pub mod get;
pub mod history;
pub mod housekeeping;
pub mod join;
pub mod leave;
pub mod lobby;
pub mod room;

use common::jwt::UserClaims;
use common::meeting_code::MeetingCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db;
use crate::db::controllers::Assignment;
use crate::domain::events::Actor;
use crate::domain::meeting::{Meeting, MeetingStart};
use crate::error::Error;

/// The live meeting `code` names, if `caller` may see it: a member of its org, or anyone when
/// it allows external participants. Unknown, ended and hidden meetings are the same 404.
pub async fn visible_meeting(
    pool: &PgPool,
    caller: &UserClaims,
    code: &str,
) -> Result<Meeting, Error> {
    let code = MeetingCode::parse(code).ok_or(Error::MeetingNotFound)?;
    let meeting = db::meetings::find_by_code(pool, &code).await?;
    visible(meeting, caller)
}

/// [`visible_meeting`] with the meeting's assignment read in the same round trip, for
/// [`room::Rooms::call_located`]; the read may share its statement with other joins'
/// ([`db::lookups`]).
pub async fn visible_meeting_located(
    rooms: &room::Rooms,
    caller: &UserClaims,
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

pub(crate) fn visible(meeting: Option<Meeting>, caller: &UserClaims) -> Result<Meeting, Error> {
    let meeting = meeting.ok_or(Error::MeetingNotFound)?;
    if !may_see(&meeting, caller) || meeting.status.is_ended() {
        return Err(Error::MeetingNotFound);
    }
    Ok(meeting)
}

/// Members of the meeting's org, or anyone when it allows external participants.
pub fn may_see(meeting: &Meeting, caller: &UserClaims) -> bool {
    meeting.org_id == caller.org_id || meeting.settings.allow_external_participants
}

/// Refuses (403) a caller who is not the meeting's host.
pub fn require_host(meeting: &Meeting, caller: &UserClaims) -> Result<(), Error> {
    if meeting.host_id == caller.sub {
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
