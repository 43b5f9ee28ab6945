//! `idempotency_keys`: looking a key up when a create inserted nothing, and expiring keys.
//!
//! Keys are written by the create statement itself (see [`super::meetings`]), never here.

use common::db::Bounded;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::idempotency::{IdempotencyKey, KEY_TTL_HOURS, RequestHash};

/// A key already stored for this user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub request_hash: RequestHash,
    pub meeting_id: Uuid,
    /// Older than [`KEY_TTL_HOURS`]: no longer honoured, and free to be reused.
    pub expired: bool,
}

#[derive(sqlx::FromRow)]
struct StoredKeyRow {
    request_hash: Vec<u8>,
    meeting_id: Uuid,
    expired: bool,
}

pub async fn find_key(
    pool: &PgPool,
    user_id: Uuid,
    key: &IdempotencyKey,
) -> Result<Option<StoredKey>, sqlx::Error> {
    let row: Option<StoredKeyRow> = sqlx::query_as(
        "select request_hash, meeting_id,
                created_at < now() - make_interval(hours => $3) as expired
         from idempotency_keys
         where user_id = $1 and key = $2",
    )
    .bind(user_id)
    .bind(key.as_str())
    .bind(KEY_TTL_HOURS)
    .fetch_optional(pool)
    .bounded()
    .await?;
    row.map(|row| {
        let request_hash = RequestHash::from_slice(&row.request_hash).ok_or_else(|| {
            sqlx::Error::Decode("idempotency_keys.request_hash is not 32 bytes".into())
        })?;
        Ok(StoredKey {
            request_hash,
            meeting_id: row.meeting_id,
            expired: row.expired,
        })
    })
    .transpose()
}

/// Deletes the user's key if it has expired, so the key can be used again. Returns whether a
/// row was deleted.
pub async fn delete_expired_key(
    pool: &PgPool,
    user_id: Uuid,
    key: &IdempotencyKey,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "delete from idempotency_keys
         where user_id = $1 and key = $2
           and created_at < now() - make_interval(hours => $3)",
    )
    .bind(user_id)
    .bind(key.as_str())
    .bind(KEY_TTL_HOURS)
    .execute(pool)
    .bounded()
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Deletes up to `batch` expired keys; returns how many went. Small batches keep each delete
/// short, and `skip locked` lets several replicas run the janitor at once without waiting on
/// each other.
pub async fn purge_expired(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "delete from idempotency_keys k
         using (select user_id, key from idempotency_keys
                where created_at < now() - make_interval(hours => $1)
                limit $2
                for update skip locked) expired
         where k.user_id = expired.user_id and k.key = expired.key",
    )
    .bind(KEY_TTL_HOURS)
    .bind(batch)
    .execute(pool)
    .bounded()
    .await?;
    Ok(result.rows_affected())
}
