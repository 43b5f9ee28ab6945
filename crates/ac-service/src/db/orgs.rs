//! The `organizations` table.

use chrono::{DateTime, Utc};
use common::db::Bounded;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub max_concurrent_meetings: i32,
    pub max_participants_per_meeting: i32,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, slug, name, max_concurrent_meetings, max_participants_per_meeting, is_active, created_at";

pub struct NewOrg<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub max_concurrent_meetings: i32,
    pub max_participants_per_meeting: i32,
}

/// Fails with a unique violation when the slug is taken.
pub async fn insert(pool: &PgPool, org: &NewOrg<'_>) -> Result<OrgRow, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into organizations (slug, name, max_concurrent_meetings, max_participants_per_meeting)
         values ($1, $2, $3, $4)
         returning {COLUMNS}"
    )))
    .bind(org.slug)
    .bind(org.name)
    .bind(org.max_concurrent_meetings)
    .bind(org.max_participants_per_meeting)
    .fetch_one(pool)
    .bounded()
    .await
}

/// Creates the org or brings an existing one with that slug to these values, active (seed). A
/// row that already holds them is left alone, so running the seed twice writes nothing.
pub async fn upsert(conn: &mut PgConnection, org: &NewOrg<'_>) -> Result<OrgRow, sqlx::Error> {
    let written: Option<OrgRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into organizations (slug, name, max_concurrent_meetings, max_participants_per_meeting)
         values ($1, $2, $3, $4)
         on conflict (slug) do update
            set name = excluded.name,
                max_concurrent_meetings = excluded.max_concurrent_meetings,
                max_participants_per_meeting = excluded.max_participants_per_meeting,
                is_active = true
          where (organizations.name, organizations.max_concurrent_meetings,
                 organizations.max_participants_per_meeting, organizations.is_active)
                is distinct from
                (excluded.name, excluded.max_concurrent_meetings,
                 excluded.max_participants_per_meeting, true)
         returning {COLUMNS}"
    )))
    .bind(org.slug)
    .bind(org.name)
    .bind(org.max_concurrent_meetings)
    .bind(org.max_participants_per_meeting)
    .fetch_optional(&mut *conn)
    .bounded()
    .await?;
    match written {
        Some(row) => Ok(row),
        None => find_by_slug(conn, org.slug)
            .await?
            .ok_or(sqlx::Error::RowNotFound),
    }
}

pub async fn find_by_slug(
    conn: &mut PgConnection,
    slug: &str,
) -> Result<Option<OrgRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from organizations where slug = $1"
    )))
    .bind(slug)
    .fetch_optional(conn)
    .bounded()
    .await
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<OrgRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from organizations where id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .bounded()
    .await
}

/// The fields a PATCH may change; `None` keeps the stored value.
#[derive(Default)]
pub struct OrgChanges<'a> {
    pub name: Option<&'a str>,
    pub max_concurrent_meetings: Option<i32>,
    pub max_participants_per_meeting: Option<i32>,
    pub is_active: Option<bool>,
}

/// Returns `None` when no org has this id.
pub async fn update(
    pool: &PgPool,
    id: Uuid,
    changes: &OrgChanges<'_>,
) -> Result<Option<OrgRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update organizations
            set name = coalesce($2, name),
                max_concurrent_meetings = coalesce($3, max_concurrent_meetings),
                max_participants_per_meeting = coalesce($4, max_participants_per_meeting),
                is_active = coalesce($5, is_active)
          where id = $1
         returning {COLUMNS}"
    )))
    .bind(id)
    .bind(changes.name)
    .bind(changes.max_concurrent_meetings)
    .bind(changes.max_participants_per_meeting)
    .bind(changes.is_active)
    .fetch_optional(pool)
    .bounded()
    .await
}
