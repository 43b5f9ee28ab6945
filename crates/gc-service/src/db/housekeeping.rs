//! The housekeeping's reads and deletes (`use_cases::housekeeping`): which meetings are due to
//! be ended, and the retention's delete. Time is PostgreSQL's `now()`.

use common::db::Bounded;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// Why a meeting is due to be ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Active, and empty for longer than the timeout.
    Empty,
    /// Still scheduled, and its start (or its creation, without one) longer ago than the TTL.
    Expired,
}

/// Meetings due for `due` (`after` past their reference time), oldest first, at most `limit`;
/// with `only` set, that one if it is still due.
pub async fn due(
    pool: &PgPool,
    due: Due,
    after: Duration,
    limit: i64,
    only: Option<Uuid>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let sql = match due {
        Due::Empty => {
            "select id from meetings
             where status = 'active' and empty_since < now() - make_interval(secs => $1)
               and ($3::uuid is null or id = $3)
             order by empty_since limit $2"
        }
        Due::Expired => {
            "select id from meetings
             where status = 'scheduled'
               and coalesce(scheduled_start_time, created_at) < now() - make_interval(secs => $1)
               and ($3::uuid is null or id = $3)
             order by coalesce(scheduled_start_time, created_at) limit $2"
        }
    };
    sqlx::query_scalar(sql)
        .bind(after.as_secs_f64())
        .bind(limit)
        .bind(only)
        .fetch_all(pool)
        .bounded()
        .await
}

/// Deletes up to `limit` meetings ended more than `days` ago, with their visits and
/// assignments (cascades); their audit rows stay. `skip locked`, so replicas share the work.
pub async fn delete_retired(pool: &PgPool, days: u32, limit: i64) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "delete from meetings m
         using (select id from meetings
                where status = 'ended' and ended_at < now() - make_interval(days => $1)
                order by ended_at limit $2
                for update skip locked) old
         where m.id = old.id",
    )
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .bind(limit)
    .execute(pool)
    .bounded()
    .await?;
    Ok(result.rows_affected())
}
