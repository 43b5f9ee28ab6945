//! The `signing_keys` table.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// A stored key, private half still sealed.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub private_key_ciphertext: Vec<u8>,
    pub private_key_nonce: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// A key about to be inserted.
pub struct NewSigningKey {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub private_key_ciphertext: Vec<u8>,
    pub private_key_nonce: Vec<u8>,
}

/// A key whose public half belongs in the JWKS.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PublishedKey {
    pub kid: String,
    pub public_key: Vec<u8>,
}

/// Advisory-lock id serialising key creation and rotation across replicas ("ACKEYS").
const KEY_LOCK_ID: i64 = 0x0000_4143_4b45_5953;

/// Waits for the key lock; released when the transaction ends.
pub async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(KEY_LOCK_ID)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes the key lock if it is free; released when the transaction ends. Scheduled rotation
/// uses this so replicas skip the check instead of queueing behind each other.
pub async fn try_lock(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(KEY_LOCK_ID)
        .fetch_one(conn)
        .await
}

pub async fn active(conn: &mut PgConnection) -> Result<Option<SigningKeyRow>, sqlx::Error> {
    sqlx::query_as(
        "select kid, public_key, private_key_ciphertext, private_key_nonce, created_at
           from signing_keys
          where retired_at is null",
    )
    .fetch_optional(conn)
    .await
}

pub async fn insert(conn: &mut PgConnection, key: &NewSigningKey) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into signing_keys (kid, public_key, private_key_ciphertext, private_key_nonce)
         values ($1, $2, $3, $4)",
    )
    .bind(&key.kid)
    .bind(&key.public_key)
    .bind(&key.private_key_ciphertext)
    .bind(&key.private_key_nonce)
    .execute(conn)
    .await?;
    Ok(())
}

/// Retires the active key, keeping it published for `publish_for` from now.
pub async fn retire_active(
    conn: &mut PgConnection,
    publish_for: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update signing_keys
            set retired_at = now(),
                publish_until = now() + make_interval(secs => $1)
          where retired_at is null",
    )
    .bind(publish_for.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

/// The active key and every retired key still inside its publication period, newest first.
pub async fn published(pool: &PgPool) -> Result<Vec<PublishedKey>, sqlx::Error> {
    sqlx::query_as(
        "select kid, public_key
           from signing_keys
          where retired_at is null or publish_until > now()
          order by created_at desc",
    )
    .fetch_all(pool)
    .await
}

/// Whether an active key exists that is younger than `age` (by the database's clock, the one
/// clock every replica shares).
pub async fn active_is_younger_than(
    conn: &mut PgConnection,
    age: Duration,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from signing_keys
                         where retired_at is null
                           and created_at > now() - make_interval(secs => $1))",
    )
    .bind(age.as_secs_f64())
    .fetch_one(conn)
    .await
}
