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

/// What [`settle`] found or wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The meeting's owner was healthy: nothing written.
    Kept(Assignment),
    /// This statement gave the meeting to a controller (a first owner, or a new one in place of
    /// an unhealthy owner, with the next fencing token).
    Assigned(Assignment),
    /// Another replica assigned or moved it meanwhile, or no controller can take it: read
    /// again with [`assignment`].
    Lost,
}

/// Keeps a meeting's healthy owner, or, when it has none or an unhealthy one, gives the meeting
/// to the less loaded of two healthy controllers with spare capacity drawn at random: one
/// statement ([`SETTLE_SQL`]). The write is a compare-and-set on what the statement read (no
/// row, or the unhealthy owner's fencing token), so two GC replicas settling at once agree on
/// one owner; the fencing token grows by one with every reassignment.
pub async fn settle(
    pool: &PgPool,
    meeting_id: Uuid,
    heartbeat_timeout_secs: u32,
) -> Result<Settled, sqlx::Error> {
    let row: Option<(String, String, String, i64, bool)> = sqlx::query_as(SETTLE_SQL)
        .bind(meeting_id)
        .bind(f64::from(heartbeat_timeout_secs))
        .fetch_optional(pool)
        .bounded()
        .await?;
    Ok(match row {
        Some((controller_id, ws_url, grpc_addr, fencing_token, written)) => {
            let assignment = Assignment {
                controller_id,
                ws_url,
                grpc_addr,
                fencing_token,
                healthy: true,
            };
            if written {
                Settled::Assigned(assignment)
            } else {
                Settled::Kept(assignment)
            }
        }
        None => Settled::Lost,
    })
}

/// `$1` the meeting, `$2` the heartbeat timeout in seconds.
///
/// - `current`: its assignment, with its owner's health.
/// - `sampled`, `picked`: unless the owner is healthy, two healthy controllers with spare
///   capacity drawn at random, and of those the one with fewer rooms, ties to the first drawn
///   (the power of two choices, docs/capacity.md). Rooms are `controller_rooms`, which
///   triggers keep exact in every statement that writes `meeting_assignments`, so a burst of
///   first joins spreads before the next heartbeat, and reading them costs the same at any
///   number of assignments. `picked` locks the chosen counter and checks its capacity again on
///   the latest count, so statements racing for a controller's last place cannot overfill it:
///   the loser picks nothing and answers no row.
/// - `inserted` (no assignment) or `moved` (an unhealthy owner, still at the fencing token
///   read): the new owner. Another replica's insert makes `inserted` do nothing; its move makes
///   `moved` find another fencing token. Either way the statement answers no row.
/// - One row: the owner now in force and whether this statement wrote it.
pub const SETTLE_SQL: &str = "with current as (
    select a.controller_id, a.fencing_token,
           c.last_heartbeat_at > now() - make_interval(secs => $2) as healthy
    from meeting_assignments a join meeting_controllers c on c.id = a.controller_id
    where a.meeting_id = $1
),
sampled as (
    select r.controller_id, r.rooms, random() as draw
    from controller_rooms r join meeting_controllers c on c.id = r.controller_id
    where not exists (select 1 from current where healthy)
      and c.last_heartbeat_at > now() - make_interval(secs => $2)
      and r.rooms < c.capacity
    order by draw
    limit 2
),
picked as (
    select r.controller_id as id
    from controller_rooms r join meeting_controllers c on c.id = r.controller_id
    where r.controller_id = (select controller_id from sampled order by rooms, draw limit 1)
      and r.rooms < c.capacity
    for update of r
),
inserted as (
    insert into meeting_assignments (meeting_id, controller_id, fencing_token)
    select $1, p.id, 1 from picked p
    where not exists (select 1 from current)
    on conflict (meeting_id) do nothing
    returning controller_id, fencing_token
),
moved as (
    update meeting_assignments a
    set controller_id = p.id, fencing_token = a.fencing_token + 1, assigned_at = now()
    from picked p
    where a.meeting_id = $1
      and a.fencing_token = (select fencing_token from current where not healthy)
    returning a.controller_id, a.fencing_token
),
owner as (
    select controller_id, fencing_token, true as written from inserted
    union all
    select controller_id, fencing_token, true from moved
    union all
    select controller_id, fencing_token, false from current where healthy
)
select o.controller_id, c.ws_url, c.grpc_addr, o.fencing_token, o.written
from owner o join meeting_controllers c on c.id = o.controller_id";

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
