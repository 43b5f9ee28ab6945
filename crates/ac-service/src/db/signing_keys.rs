//! The `signing_keys` table.
//!
//! A key signs during `[activates_at, retired_at)`; the migration's exclusion constraint keeps
//! those intervals from overlapping. Every "now" here is the database's `now()`, so replicas
//! with skewed clocks still agree on which key signs.

use common::db::Bounded;
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
    pub activates_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "kid, public_key, private_key_ciphertext, private_key_nonce, created_at, activates_at";

/// A key about to be inserted.
pub struct NewSigningKey {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub private_key_ciphertext: Vec<u8>,
    pub private_key_nonce: Vec<u8>,
}

/// The newest key (the one without a successor) and where it stands.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct NewestKey {
    pub kid: String,
    pub activates_at: DateTime<Utc>,
    /// Published but not signing yet.
    pub pending: bool,
    /// Signing for at least the age asked about (see [`newest`]).
    pub older_than_age: bool,
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
        .bounded()
        .await?;
    Ok(())
}

/// Takes the key lock if it is free; released when the transaction ends. Scheduled rotation
/// uses this so replicas skip the check instead of queueing behind each other.
pub async fn try_lock(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(KEY_LOCK_ID)
        .fetch_one(conn)
        .bounded()
        .await
}

/// The key that signs now: the newest one whose activation has passed and that has not been
/// retired.
pub async fn signing(conn: &mut PgConnection) -> Result<Option<SigningKeyRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS}
           from signing_keys
          where activates_at <= now() and (retired_at is null or retired_at > now())
          order by activates_at desc
          limit 1"
    )))
    .fetch_optional(conn)
    .bounded()
    .await
}

/// The key without a successor, if any; `older_than_age` says whether it has been signing for
/// at least `age`.
pub async fn newest(
    conn: &mut PgConnection,
    age: Duration,
) -> Result<Option<NewestKey>, sqlx::Error> {
    sqlx::query_as(
        "select kid, activates_at,
                activates_at > now() as pending,
                activates_at <= now() - make_interval(secs => $1) as older_than_age
           from signing_keys
          where retired_at is null",
    )
    .bind(age.as_secs_f64())
    .fetch_optional(conn)
    .bounded()
    .await
}

/// Inserts a key that starts signing `activate_in` from now, and returns that moment. The
/// newest key must have been retired at the same moment first (see [`retire_newest`]).
pub async fn insert(
    conn: &mut PgConnection,
    key: &NewSigningKey,
    activate_in: Duration,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "insert into signing_keys
                (kid, public_key, private_key_ciphertext, private_key_nonce, activates_at)
         values ($1, $2, $3, $4, now() + make_interval(secs => $5))
         returning activates_at",
    )
    .bind(&key.kid)
    .bind(&key.public_key)
    .bind(&key.private_key_ciphertext)
    .bind(&key.private_key_nonce)
    .bind(activate_in.as_secs_f64())
    .fetch_one(conn)
    .bounded()
    .await
}

/// Ends the newest key's signing interval `retire_in` from now and keeps it published for
/// `publish_for` after that. `now()` is fixed for the transaction, so [`insert`] with the same
/// delay in the same transaction starts the next interval exactly where this one ends.
pub async fn retire_newest(
    conn: &mut PgConnection,
    retire_in: Duration,
    publish_for: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update signing_keys
            set retired_at = now() + make_interval(secs => $1),
                publish_until = now() + make_interval(secs => $1) + make_interval(secs => $2)
          where retired_at is null",
    )
    .bind(retire_in.as_secs_f64())
    .bind(publish_for.as_secs_f64())
    .execute(conn)
    .bounded()
    .await?;
    Ok(())
}

/// Brings a pending newest key's activation forward to now. Only for the case where no key
/// signs at all (rows deleted by hand), so there is nothing to wait for.
pub async fn activate_newest_now(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update signing_keys set activates_at = now()
          where retired_at is null and activates_at > now()",
    )
    .execute(conn)
    .bounded()
    .await?;
    Ok(())
}

/// Pending, signing and retired keys still inside their publication period, newest first.
pub async fn published(pool: &PgPool) -> Result<Vec<PublishedKey>, sqlx::Error> {
    sqlx::query_as(
        "select kid, public_key
           from signing_keys
          where retired_at is null or publish_until > now()
          order by activates_at desc, created_at desc",
    )
    .fetch_all(pool)
    .bounded()
    .await
}

/// Deletes retired keys whose publication has ended: no token they signed is still valid, so
/// their private halves have no use left and should not linger in the database.
pub async fn delete_unpublished(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("delete from signing_keys where publish_until <= now() returning kid")
        .fetch_all(pool)
        .bounded()
        .await
}

/// Where a key stood when it was withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct WithdrawnKey {
    /// It was signing, or it was the pending next key: something must sign in its place.
    pub was_current: bool,
}

/// Deletes the key `kid`, private half included, and returns where it stood; `None` if there is
/// no such key. A withdrawn key must never sign or verify again, so nothing of it is kept.
pub async fn delete(
    conn: &mut PgConnection,
    kid: &str,
) -> Result<Option<WithdrawnKey>, sqlx::Error> {
    sqlx::query_as(
        "delete from signing_keys where kid = $1
         returning (retired_at is null or retired_at > now()) as was_current",
    )
    .bind(kid)
    .fetch_optional(conn)
    .bounded()
    .await
}

/// Makes room for a key that signs from now on: deletes pending keys (they never signed, so no
/// token needs them) and retires the key signing now, if any, at this instant, keeping it
/// published for `publish_for` so the tokens it signed stay valid.
pub async fn retire_all_now(
    conn: &mut PgConnection,
    publish_for: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query("delete from signing_keys where activates_at > now()")
        .execute(&mut *conn)
        .bounded()
        .await?;
    sqlx::query(
        "update signing_keys
            set retired_at = now(),
                publish_until = now() + make_interval(secs => $1)
          where retired_at is null or retired_at > now()",
    )
    .bind(publish_for.as_secs_f64())
    .execute(conn)
    .bounded()
    .await?;
    Ok(())
}
