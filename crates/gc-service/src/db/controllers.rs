//! `meeting_controllers` and `meeting_assignments`: the registry of meeting controllers and
//! which one owns each meeting, with the fencing token of that ownership.
//!
//! A controller is healthy while its last heartbeat is younger than the timeout GC is
//! configured with; health is decided in each query from `now()`, so nothing has to mark
//! controllers down and every GC replica agrees.

use common::db::Bounded;
use sqlx::PgPool;
use uuid::Uuid;

/// A registered controller, as assignment needs it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Controller {
    pub id: String,
    pub ws_url: String,
    pub grpc_addr: String,
}

/// Who owns a meeting now.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Assignment {
    pub controller_id: String,
    pub ws_url: String,
    pub grpc_addr: String,
    pub fencing_token: i64,
    /// The owner's heartbeat is fresh.
    pub healthy: bool,
}

/// Registers a controller, or updates it when it registers again (after a restart); counts
/// as a heartbeat.
pub async fn register(
    pool: &PgPool,
    id: &str,
    ws_url: &str,
    grpc_addr: &str,
    capacity: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into meeting_controllers (id, ws_url, grpc_addr, capacity, last_heartbeat_at)
         values ($1, $2, $3, $4, now())
         on conflict (id) do update
            set ws_url = excluded.ws_url, grpc_addr = excluded.grpc_addr,
                capacity = excluded.capacity, last_heartbeat_at = now()",
    )
    .bind(id)
    .bind(ws_url)
    .bind(grpc_addr)
    .bind(capacity)
    .execute(pool)
    .bounded()
    .await?;
    Ok(())
}

/// Records a heartbeat; false when the controller is not registered (it must register again).
pub async fn heartbeat(pool: &PgPool, id: &str, load: i32) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "update meeting_controllers set last_heartbeat_at = now(), current_load = $2
         where id = $1",
    )
    .bind(id)
    .bind(load)
    .execute(pool)
    .bounded()
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Registered controllers whose heartbeat is fresh, and those whose heartbeat is older than
/// the timeout.
pub async fn health_counts(
    pool: &PgPool,
    heartbeat_timeout_secs: u32,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "select count(*) filter (where last_heartbeat_at > now() - make_interval(secs => $1)),
                count(*) filter (where last_heartbeat_at <= now() - make_interval(secs => $1))
         from meeting_controllers",
    )
    .bind(f64::from(heartbeat_timeout_secs))
    .fetch_one(pool)
    .bounded()
    .await
}

/// The meeting's assignment, if it has one.
pub async fn assignment(
    pool: &PgPool,
    meeting_id: Uuid,
    heartbeat_timeout_secs: u32,
) -> Result<Option<Assignment>, sqlx::Error> {
    sqlx::query_as(
        "select a.controller_id, c.ws_url, c.grpc_addr, a.fencing_token,
                c.last_heartbeat_at > now() - make_interval(secs => $2) as healthy
         from meeting_assignments a join meeting_controllers c on c.id = a.controller_id
         where a.meeting_id = $1",
    )
    .bind(meeting_id)
    .bind(f64::from(heartbeat_timeout_secs))
    .fetch_optional(pool)
    .bounded()
    .await
}

/// Gives the meeting to the least loaded healthy controller with spare capacity, if its
/// assignment is still `expected` (none, or the stale one the caller saw): a compare-and-set,
/// so two GC replicas reassigning at once agree on one owner. The fencing token grows by one
/// with every reassignment. Returns the assignment now in force, or `None` when no controller
/// can take the meeting.
pub async fn assign(
    pool: &PgPool,
    meeting_id: Uuid,
    expected: Option<&Assignment>,
    heartbeat_timeout_secs: u32,
) -> Result<Option<Assignment>, sqlx::Error> {
    let timeout = f64::from(heartbeat_timeout_secs);
    // Load counts the rooms GC assigned (kept exact here) rather than the heartbeat's figure,
    // so a burst of first joins spreads before the next heartbeat.
    let picked: Option<Controller> = sqlx::query_as(
        "select c.id, c.ws_url, c.grpc_addr
         from meeting_controllers c
         left join lateral (select count(*) as rooms from meeting_assignments a
                            where a.controller_id = c.id) load on true
         where c.last_heartbeat_at > now() - make_interval(secs => $1)
           and load.rooms < c.capacity
         order by load.rooms, c.id
         limit 1",
    )
    .bind(timeout)
    .fetch_optional(pool)
    .bounded()
    .await?;
    let Some(controller) = picked else {
        return Ok(None);
    };
    let written = match expected {
        None => sqlx::query(
            "insert into meeting_assignments (meeting_id, controller_id, fencing_token)
             values ($1, $2, 1)
             on conflict (meeting_id) do nothing",
        )
        .bind(meeting_id)
        .bind(&controller.id)
        .execute(pool)
        .bounded()
        .await?
        .rows_affected(),
        Some(stale) => sqlx::query(
            "update meeting_assignments
             set controller_id = $2, fencing_token = fencing_token + 1, assigned_at = now()
             where meeting_id = $1 and fencing_token = $3",
        )
        .bind(meeting_id)
        .bind(&controller.id)
        .bind(stale.fencing_token)
        .execute(pool)
        .bounded()
        .await?
        .rows_affected(),
    };
    if written == 0 {
        tracing::debug!("another replica assigned the meeting first");
    }
    assignment(pool, meeting_id, heartbeat_timeout_secs).await
}

/// Whether `controller_id` owns the meeting with `code` (a controller may only report on its
/// own rooms). Returns the meeting's id when it does.
pub async fn owned_meeting(
    pool: &PgPool,
    controller_id: &str,
    code: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select m.id from meetings m join meeting_assignments a on a.meeting_id = m.id
         where m.meeting_code = $1 and a.controller_id = $2",
    )
    .bind(code)
    .bind(controller_id)
    .fetch_optional(pool)
    .bounded()
    .await
}
