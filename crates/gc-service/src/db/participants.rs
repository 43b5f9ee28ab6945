//! `participants`: the history of who was in which meeting, with which role and until when.
//! A user has at most one open visit per meeting (`participants_one_open_visit`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Opens a visit unless the user has one open already; true when it opened one.
pub async fn open_visit(
    conn: &mut PgConnection,
    meeting_id: Uuid,
    user_id: Uuid,
    role: &str,
    joined_at: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "insert into participants (meeting_id, user_id, role, joined_at)
         values ($1, $2, $3, coalesce($4, now()))
         on conflict (meeting_id, user_id) where left_at is null do nothing",
    )
    .bind(meeting_id)
    .bind(user_id)
    .bind(role)
    .bind(joined_at)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Closes the user's open visit; true when there was one.
pub async fn close_visit(
    conn: &mut PgConnection,
    meeting_id: Uuid,
    user_id: Uuid,
    reason: &str,
    left_at: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "update participants
         set left_at = greatest(joined_at, coalesce($4, now())), leave_reason = $3
         where meeting_id = $1 and user_id = $2 and left_at is null",
    )
    .bind(meeting_id)
    .bind(user_id)
    .bind(reason)
    .bind(left_at)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Whether the user has a visit of the meeting that started at `since` or later (any visit at
/// all when `since` is unknown).
pub async fn visited_since(
    conn: &mut PgConnection,
    meeting_id: Uuid,
    user_id: Uuid,
    since: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from participants
                        where meeting_id = $1 and user_id = $2
                          and ($3::timestamptz is null or joined_at >= $3 - interval '1 second'))",
    )
    .bind(meeting_id)
    .bind(user_id)
    .bind(since)
    .fetch_one(conn)
    .await
}

/// Closes every open visit of a meeting (it ended); returns how many.
pub async fn close_all(
    conn: &mut PgConnection,
    meeting_id: Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "update participants set left_at = greatest(joined_at, now()), leave_reason = $2
         where meeting_id = $1 and left_at is null",
    )
    .bind(meeting_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// Open visits of a meeting (people GC believes are present).
pub async fn open_count(pool: &PgPool, meeting_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from participants where meeting_id = $1 and left_at is null",
    )
    .bind(meeting_id)
    .fetch_one(pool)
    .await
}

/// Records users a room has just seated, in one statement: the meeting becomes `active` (with
/// `started_at`) and its empty-meeting clock stops, unless it is so already; each user without
/// an open visit gets one, and each new visit its `participant_admitted` audit row with
/// `actor`. Returns how many visits it opened. One round trip, whatever the number of users.
///
/// Nothing is recorded for a meeting that has ended, even one ending at this very moment: the
/// share lock on the meeting row waits for an `end` in flight and then sees the row as it
/// committed. Without it, an admission whose snapshot predates the end but which commits after
/// the end closed the open visits would leave a visit open on an ended meeting. Concurrent
/// admissions share the lock and do not wait for each other, except for the one that updates the
/// row (activating the meeting or stopping its empty clock). That one takes the update's lock
/// instead, never the share lock first: `live` runs only when `occupied` changed nothing, since
/// a share lock upgraded to an update deadlocks against another admission doing the same.
pub async fn admit(
    pool: &PgPool,
    meeting_id: Uuid,
    org_id: Uuid,
    users: &[(Uuid, &str)],
    actor: crate::db::audit::Actor<'_>,
) -> Result<u64, sqlx::Error> {
    let ids: Vec<Uuid> = users.iter().map(|(id, _)| *id).collect();
    let roles: Vec<&str> = users.iter().map(|(_, role)| *role).collect();
    let (actor_id, actor_type, ip, user_agent) = actor.columns();
    let result = sqlx::query(
        "with occupied as (
            update meetings
            set status = 'active', started_at = coalesce(started_at, now()), empty_since = null
            where id = $1
              and (status = 'scheduled' or (status = 'active' and empty_since is not null))
            returning id
         ),
         live as (
            select id from meetings
            where id = $1 and status <> 'ended' and not exists (select 1 from occupied)
            for share
         ),
         visits as (
            insert into participants (meeting_id, user_id, role)
            select $1, u.id, u.role
            from unnest($3::uuid[], $4::text[]) as u(id, role)
            where exists (select 1 from occupied) or exists (select 1 from live)
            on conflict (meeting_id, user_id) where left_at is null do nothing
            returning user_id, role
         )
         insert into audit_logs (org_id, actor_id, actor_type, action, resource_type,
                                 resource_id, details, ip, user_agent)
         select $2, $5, $6, 'participant_admitted', 'meeting', $1::text,
                jsonb_build_object('user_id', v.user_id, 'role', v.role), $7::inet, $8
         from visits v",
    )
    .bind(meeting_id)
    .bind(org_id)
    .bind(&ids)
    .bind(&roles)
    .bind(actor_id)
    .bind(actor_type)
    .bind(ip.map(|ip| ip.to_string()))
    .bind(user_agent)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// [`admit`] for the admissions of many meetings at once, in one statement (one transaction):
/// row `i` of each column of `rows` is one visit. Every meeting of the batch is made active, or
/// share-locked, as [`admit`] does for one; a meeting that has ended records none of its
/// visits. Each of the two steps locks the meetings' rows in the order of their ids (an index
/// scan over the sorted `$9`), so two batches sharing meetings wait for each other rather than
/// deadlock. Returns how many visits it opened.
pub async fn admit_batch(
    pool: &PgPool,
    rows: &crate::db::admissions::AdmissionRows,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "with batch as (
            select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                 $6::text[], $7::text[], $8::text[])
                as b(meeting_id, org_id, user_id, role, actor_id, actor_type, ip, user_agent)
         ),
         occupied as (
            update meetings
            set status = 'active', started_at = coalesce(started_at, now()), empty_since = null
            where id = any($9)
              and (status = 'scheduled' or (status = 'active' and empty_since is not null))
            returning id
         ),
         live as (
            select id from meetings
            where id = any($9)
              and status <> 'ended'
              and id not in (select id from occupied)
            for share
         ),
         visits as (
            insert into participants (meeting_id, user_id, role)
            select b.meeting_id, b.user_id, b.role
            from batch b
            where b.meeting_id in (select id from occupied union all select id from live)
            on conflict (meeting_id, user_id) where left_at is null do nothing
            returning meeting_id, user_id, role
         )
         insert into audit_logs (org_id, actor_id, actor_type, action, resource_type,
                                 resource_id, details, ip, user_agent)
         select b.org_id, b.actor_id, b.actor_type, 'participant_admitted', 'meeting',
                v.meeting_id::text, jsonb_build_object('user_id', v.user_id, 'role', v.role),
                b.ip::inet, b.user_agent
         from visits v
         join batch b on b.meeting_id = v.meeting_id and b.user_id = v.user_id",
    )
    .bind(&rows.meeting_ids)
    .bind(&rows.org_ids)
    .bind(&rows.user_ids)
    .bind(&rows.roles)
    .bind(&rows.actor_ids)
    .bind(&rows.actor_types)
    .bind(&rows.ips)
    .bind(&rows.user_agents)
    .bind(rows.meetings())
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
