//! The `service_credentials` table.

use chrono::{DateTime, Utc};
use common::db::Bounded;
use sqlx::{PgConnection, PgPool};

#[derive(Clone, sqlx::FromRow)]
pub struct CredentialRow {
    pub client_id: String,
    pub secret_hash: String,
    pub service_type: String,
    pub scopes: Vec<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "client_id, secret_hash, service_type, scopes, is_active, created_at";

pub struct NewCredential<'a> {
    pub client_id: &'a str,
    pub secret_hash: &'a str,
    pub service_type: &'a str,
    pub scopes: &'a [String],
}

pub async fn find(pool: &PgPool, client_id: &str) -> Result<Option<CredentialRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from service_credentials where client_id = $1"
    )))
    .bind(client_id)
    .fetch_optional(pool)
    .bounded()
    .await
}

/// Fails with a unique violation when the client id is taken.
pub async fn insert(
    pool: &PgPool,
    credential: &NewCredential<'_>,
) -> Result<CredentialRow, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into service_credentials (client_id, secret_hash, service_type, scopes)
         values ($1, $2, $3, $4)
         returning {COLUMNS}"
    )))
    .bind(credential.client_id)
    .bind(credential.secret_hash)
    .bind(credential.service_type)
    .bind(credential.scopes)
    .fetch_one(pool)
    .bounded()
    .await
}

pub async fn find_for_seed(
    conn: &mut PgConnection,
    client_id: &str,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from service_credentials where client_id = $1"
    )))
    .bind(client_id)
    .fetch_optional(conn)
    .bounded()
    .await
}

/// Creates the credential or brings an existing one to these values (and reactivates it).
pub async fn upsert(
    conn: &mut PgConnection,
    credential: &NewCredential<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into service_credentials (client_id, secret_hash, service_type, scopes)
         values ($1, $2, $3, $4)
         on conflict (client_id) do update
            set secret_hash = excluded.secret_hash,
                service_type = excluded.service_type,
                scopes = excluded.scopes,
                is_active = true",
    )
    .bind(credential.client_id)
    .bind(credential.secret_hash)
    .bind(credential.service_type)
    .bind(credential.scopes)
    .execute(conn)
    .bounded()
    .await?;
    Ok(())
}
