//! The `users` table. E-mails are stored as typed; every lookup compares `lower(email)` (the
//! expression the unique index is built on) with `lower($1)`, so lookups and uniqueness use one
//! and the same case folding, PostgreSQL's. Callers pass the address as typed and never
//! lowercase it themselves: Rust's `to_lowercase` disagrees with `lower()` on some characters
//! (`İ`), and an account would then be unreachable.

use chrono::{DateTime, Utc};
use common::db::Bounded;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, org_id, email, display_name, roles, is_active, created_at";

/// What sign-in needs to know about an account.
#[derive(Clone, sqlx::FromRow)]
pub struct LoginRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub password_hash: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub user_active: bool,
    pub org_active: bool,
}

pub struct NewUser<'a> {
    pub org_id: Uuid,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
    pub roles: &'a [String],
}

pub async fn find_for_login(pool: &PgPool, email: &str) -> Result<Option<LoginRow>, sqlx::Error> {
    sqlx::query_as(
        "select u.id, u.org_id, u.password_hash, u.display_name, u.roles,
                u.is_active as user_active, o.is_active as org_active
           from users u
           join organizations o on o.id = u.org_id
          where lower(u.email) = lower($1)",
    )
    .bind(email)
    .fetch_optional(pool)
    .bounded()
    .await
}

/// Fails with a unique violation when the e-mail (in any case) is taken.
pub async fn insert(pool: &PgPool, user: &NewUser<'_>) -> Result<UserRow, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into users (org_id, email, password_hash, display_name, roles)
         values ($1, $2, $3, $4, $5)
         returning {COLUMNS}"
    )))
    .bind(user.org_id)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.display_name)
    .bind(user.roles)
    .fetch_one(pool)
    .bounded()
    .await
}

/// The stored account of an e-mail address with its hash, for the seed's "is it already so?"
/// check.
#[derive(Clone, sqlx::FromRow)]
pub struct SeedUserRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub is_active: bool,
}

pub async fn find_for_seed(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<SeedUserRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, org_id, email, password_hash, display_name, roles, is_active
           from users where lower(email) = lower($1)",
    )
    .bind(email)
    .fetch_optional(conn)
    .bounded()
    .await
}

pub async fn insert_for_seed(
    conn: &mut PgConnection,
    user: &NewUser<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into users (org_id, email, password_hash, display_name, roles)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(user.org_id)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.display_name)
    .bind(user.roles)
    .execute(conn)
    .bounded()
    .await?;
    Ok(())
}

/// Brings an existing account to the seed's values (and reactivates it).
pub async fn update_for_seed(
    conn: &mut PgConnection,
    id: Uuid,
    user: &NewUser<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update users
            set org_id = $2, email = $3, password_hash = $4, display_name = $5, roles = $6,
                is_active = true
          where id = $1",
    )
    .bind(id)
    .bind(user.org_id)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.display_name)
    .bind(user.roles)
    .execute(conn)
    .bounded()
    .await?;
    Ok(())
}

/// Whether the user is, right now, an active `org_admin` of an active org `org_id`. Checked on
/// top of the token so a demoted or deactivated admin loses the right at once, not at expiry.
pub async fn is_active_org_admin(
    pool: &PgPool,
    user_id: Uuid,
    org_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from users u join organizations o on o.id = u.org_id
                         where u.id = $1 and u.org_id = $2
                           and u.is_active and o.is_active
                           and 'org_admin' = any (u.roles))",
    )
    .bind(user_id)
    .bind(org_id)
    .fetch_one(pool)
    .bounded()
    .await
}
