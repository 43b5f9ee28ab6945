//! What meeting controllers tell GC (over `GlobalControllerService`): they register and
//! heartbeat, and report participants who left and rooms left empty. A controller acts only as
//! itself (its id is the client id it authenticated with) and reports only on rooms it owns.

use chrono::{DateTime, Utc};
use common::db::Bounded;
use common::jwt::MeetingRole;
use sqlx::PgPool;

use crate::clients::mc::seat_number;
use crate::db;
use crate::db::participants::{EndedSeat, Leave};
use crate::domain::events::{Actor, HostChangeReason};
use crate::domain::room::HostChange;
use crate::error::Error;
use crate::use_cases::parse_user_id;

/// Longest accepted URL or address a controller registers.
pub const MAX_ADDRESS_LEN: usize = 512;

/// A controller as it registers.
#[derive(Debug)]
pub struct Registration<'a> {
    pub controller_id: &'a str,
    pub websocket_url: &'a str,
    pub grpc_address: &'a str,
    pub capacity: u32,
}

/// Refuses (403) a caller acting for another controller.
pub fn require_self(caller_id: &str, controller_id: &str) -> Result<(), Error> {
    if caller_id == controller_id {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "a meeting controller may only act as itself".into(),
        ))
    }
}

pub async fn register(pool: &PgPool, caller_id: &str, r: &Registration<'_>) -> Result<(), Error> {
    require_self(caller_id, r.controller_id)?;
    check_url(r.websocket_url, &["ws", "wss"])?;
    check_url(r.grpc_address, &["http", "https"])?;
    let capacity = i32::try_from(r.capacity).unwrap_or(i32::MAX);
    db::controllers::register(
        pool,
        r.controller_id,
        r.websocket_url,
        r.grpc_address,
        capacity,
    )
    .await?;
    tracing::info!(
        controller_id = r.controller_id,
        capacity,
        "meeting controller registered"
    );
    Ok(())
}

/// Records a heartbeat; NOT_FOUND for a controller GC does not know (it must register again).
pub async fn heartbeat(
    pool: &PgPool,
    caller_id: &str,
    controller_id: &str,
    active_meetings: u32,
) -> Result<(), Error> {
    require_self(caller_id, controller_id)?;
    let load = i32::try_from(active_meetings).unwrap_or(i32::MAX);
    if db::controllers::heartbeat(pool, controller_id, load).await? {
        Ok(())
    } else {
        Err(Error::Api(common::error::ApiError::not_found()))
    }
}

/// A controller's report that a seat of one of its rooms ended (a `leave` message, a reconnect
/// grace that ran out).
#[derive(Debug)]
pub struct LeftReport<'a> {
    pub controller_id: &'a str,
    pub code: &'a str,
    pub user_id: &'a str,
    pub reason: &'a str,
    pub left_at: Option<DateTime<Utc>>,
    pub joined_at: Option<DateTime<Utc>>,
    pub role: MeetingRole,
    /// The seat's number; 0 when the controller did not say.
    pub seat: u64,
    /// The room's last seat number when it ended.
    pub last_seat: u64,
    /// The user hosted and others stayed: the role passed on (DESIGN §12).
    pub host_change: Option<HostChange>,
}

/// A participant left a room the controller owns: their visit is closed, or, if GC never
/// recorded it (a crash between the room's write and GC's, or the admission is still on its
/// way), written closed. A repeated report finds the seat's row closed and records nothing twice.
pub async fn participant_left(
    pool: &PgPool,
    caller_id: &str,
    report: &LeftReport<'_>,
) -> Result<(), Error> {
    require_self(caller_id, report.controller_id)?;
    let meeting_id = owned(pool, report.controller_id, report.code).await?;
    let user_id = parse_user_id(report.user_id)?;
    let Some(meeting) = db::meetings::find_meeting(pool, meeting_id).await? else {
        return Err(Error::MeetingNotFound);
    };
    let seat = match report.seat {
        0 => None,
        number => Some(EndedSeat {
            seat: seat_number(number)?,
            role: report.role,
            joined_at: report.joined_at,
        }),
    };
    let leave = Leave {
        meeting_id,
        org_id: meeting.org_id,
        user_id,
        reason: report.reason,
        left_at: report.left_at,
        seat,
        last_seat: seat_number(report.last_seat)?,
        // A room left empty says so in its own report (`meeting_empty`).
        room_empty: false,
    };
    let actor = Actor::Service {
        id: report.controller_id,
    };
    db::participants::record_leave(pool, &leave, actor).await?;
    if let Some(change) = report.host_change {
        db::hosts::record_change(pool, &meeting, change, HostChangeReason::Succession, actor)
            .await?;
    }
    Ok(())
}

/// Nobody is left in a room the controller owns (as of its last seat `last_seat`): the
/// empty-meeting clock starts, unless a later seat has been recorded since.
pub async fn meeting_empty(
    pool: &PgPool,
    caller_id: &str,
    controller_id: &str,
    code: &str,
    since: Option<DateTime<Utc>>,
    last_seat: u64,
) -> Result<(), Error> {
    require_self(caller_id, controller_id)?;
    let meeting_id = owned(pool, controller_id, code).await?;
    let mut tx = pool.begin().bounded().await?;
    db::meetings::mark_empty(&mut tx, meeting_id, seat_number(last_seat)?, since).await?;
    tx.commit().bounded().await?;
    Ok(())
}

async fn owned(pool: &PgPool, controller_id: &str, code: &str) -> Result<uuid::Uuid, Error> {
    db::controllers::owned_meeting(pool, controller_id, code)
        .await?
        .ok_or(Error::Api(common::error::ApiError::new(
            common::error::ErrorCode::RoomNotAssigned,
            "the room is not assigned to this controller",
        )))
}

fn check_url(raw: &str, schemes: &[&str]) -> Result<(), Error> {
    // URL parsers drop leading and trailing control characters; an address that holds any is
    // refused rather than stored as something else.
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::Api(common::error::ApiError::bad_request(
            "malformed address",
        )));
    }
    let url = reqwest::Url::parse(raw)
        .map_err(|_| Error::Api(common::error::ApiError::bad_request("malformed address")))?;
    let ok = raw.len() <= MAX_ADDRESS_LEN
        && schemes.contains(&url.scheme())
        && url.host_str().is_some()
        && url.query().is_none()
        && url.fragment().is_none();
    if ok {
        Ok(())
    } else {
        Err(Error::Api(common::error::ApiError::bad_request(
            "the address must be an absolute URL of an allowed scheme",
        )))
    }
}
