//! What the use cases work with: [`Rooms`], the plain context of GC's meeting operations
//! (the database, the rooms' [`Placement`], the queues that share statements, the budget of
//! joins and leaves). Rooms themselves are reached only through the placement
//! (`clients::mc::placement`), which owns the wire format.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::error::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clients::mc::Placement;
use crate::config::LifecycleSettings;
use crate::db::admissions::Admissions;
use crate::db::lookups::Lookups;
use crate::domain::budget::Budget;
use crate::error::Error;
use crate::use_cases::detached::Detached;

/// What the use cases need to reach rooms and record what they decide.
#[derive(Clone)]
pub struct Rooms {
    pub pool: PgPool,
    /// Which controller holds which meeting, and the calls to it.
    pub placement: Placement,
    pub settings: LifecycleSettings,
    /// Where admissions are recorded, many to a transaction ([`crate::db::admissions`]).
    pub admissions: Admissions,
    /// Where joins read their meeting, many to a statement ([`crate::db::lookups`]).
    pub lookups: Lookups,
    /// The limit on the tasks that run on after their request ([`super::detached`]).
    pub detached: Detached,
    /// How often one user may join or leave one meeting (per replica).
    pub comings_and_goings: Arc<Budget<(Uuid, Uuid)>>,
}

/// (user, meeting) pairs whose joins and leaves one replica remembers at most (a few MiB).
pub const JOIN_LEAVE_KEYS: usize = 100_000;

/// The budget of joins and leaves of `settings` (by default 20 at once, then one every three
/// seconds: a page that reloads or a client that reconnects never meets it; a script cycling
/// join and leave does at once).
pub fn join_leave_budget(settings: &LifecycleSettings) -> Arc<Budget<(Uuid, Uuid)>> {
    let interval = Duration::from_millis(settings.join_leave_interval_ms.max(1));
    Arc::new(Budget::new(
        settings.join_leave_burst,
        1.0 / interval.as_secs_f64(),
        JOIN_LEAVE_KEYS,
    ))
}

impl Rooms {
    /// Spends one of the caller's joins and leaves of the meeting, or refuses with 429
    /// `RATE_LIMITED` and the seconds until the next (`Retry-After`).
    pub fn come_or_go(&self, user_id: Uuid, meeting_id: Uuid) -> Result<(), Error> {
        self.comings_and_goings
            .take(&(user_id, meeting_id), Instant::now())
            .map_err(|wait| {
                crate::metrics::join_leave_limited();
                Error::Api(ApiError::rate_limited(wait.as_secs_f64().ceil() as u64))
            })
    }
}
