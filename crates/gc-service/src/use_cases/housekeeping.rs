//! What ends and deletes meetings without anyone asking, run by every GC replica: the
//! empty-meeting timeout, the expiry of scheduled meetings nobody joined, and retention.
//!
//! Replicas do not coordinate: each pass reads a batch of due meetings and ends each in its own
//! transaction through the same code as `/end`, whose conditional update lets only one replica
//! end a meeting; retention deletes with `for update skip locked`, so replicas share it without
//! waiting on each other. A meeting is checked to be still due right before it is ended (someone
//! may have joined since the batch was read), and one meeting's failure is logged without
//! stopping the pass. Time is PostgreSQL's `now()`, so the thresholds can be tested by moving
//! the stored timestamps, never by waiting.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clients::mc::Known;
use crate::config::LifecycleSettings;
use crate::db;
use crate::db::housekeeping::{self, Due};
use crate::domain::events::Actor;
use crate::error::Error;
use crate::use_cases::end::{EndReason, end};
use crate::use_cases::room::Rooms;

/// Meetings one pass ends or deletes at most, per kind.
pub const BATCH: i64 = 100;

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub ended_empty: u32,
    pub expired: u32,
    pub deleted: u64,
}

/// Runs a pass every `housekeeping_interval_secs` until `stop`.
pub async fn run(rooms: Rooms, stop: CancellationToken) {
    let every = Duration::from_secs(rooms.settings.housekeeping_interval_secs);
    common::shell::every(every, stop, || async {
        match run_once(&rooms).await {
            Ok(pass) if pass != Pass::default() => tracing::info!(?pass, "housekeeping pass"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "housekeeping pass failed"),
        }
    })
    .await;
}

/// One pass: ends meetings empty for too long and scheduled ones nobody joined, deletes
/// meetings ended longer ago than the retention.
pub async fn run_once(rooms: &Rooms) -> Result<Pass, Error> {
    let settings = &rooms.settings;
    let mut pass = Pass::default();
    for id in due(&rooms.pool, Due::Empty, settings).await? {
        match end_one(rooms, id, Due::Empty).await {
            Ok(true) => pass.ended_empty += 1,
            Ok(false) => {}
            Err(error) => tracing::warn!(meeting_id = %id, %error, "cannot end an empty meeting"),
        }
    }
    for id in due(&rooms.pool, Due::Expired, settings).await? {
        match end_one(rooms, id, Due::Expired).await {
            Ok(true) => pass.expired += 1,
            Ok(false) => {}
            Err(error) => tracing::warn!(meeting_id = %id, %error, "cannot expire a meeting"),
        }
    }
    pass.deleted =
        housekeeping::delete_retired(&rooms.pool, settings.meeting_retention_days, BATCH).await?;
    Ok(pass)
}

/// Meetings due, oldest first, at most [`BATCH`].
async fn due(pool: &PgPool, due: Due, settings: &LifecycleSettings) -> Result<Vec<Uuid>, Error> {
    Ok(housekeeping::due(pool, due, after(due, settings), BATCH, None).await?)
}

/// How long after its reference time (`empty_since`, the scheduled start) a meeting is due.
fn after(due: Due, settings: &LifecycleSettings) -> Duration {
    Duration::from_secs(match due {
        Due::Empty => settings.empty_meeting_timeout_secs,
        Due::Expired => settings.scheduled_meeting_ttl_secs,
    })
}

/// Ends `id` if it is still due; whether this call ended it.
async fn end_one(rooms: &Rooms, id: Uuid, why: Due) -> Result<bool, Error> {
    let after = after(why, &rooms.settings);
    if housekeeping::due(&rooms.pool, why, after, 1, Some(id))
        .await?
        .is_empty()
    {
        return Ok(false);
    }
    let Some(meeting) = db::meetings::find_meeting(&rooms.pool, id).await? else {
        return Ok(false);
    };
    let reason = match why {
        Due::Empty => EndReason::EmptyTimeout,
        Due::Expired => EndReason::Expired,
    };
    let ended = end(rooms, meeting, Known::NotRead, reason, Actor::System).await?;
    Ok(ended.ended_at.is_some())
}
