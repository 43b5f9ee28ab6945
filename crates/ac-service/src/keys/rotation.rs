//! Creating the first key and rotating keys, safely across replicas.
//!
//! Both happen in a transaction holding a PostgreSQL advisory lock, so two replicas starting or
//! rotating at once do not both create a key; the partial unique index on `signing_keys`
//! (one row with `retired_at is null`) backs this up. The retired key stays published long
//! enough for every token it signed, including tokens signed by replicas that have not yet
//! reloaded the active key, to expire.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

use crate::config::MasterKey;
use crate::db::signing_keys::{self, SigningKeyRow};

/// Why a rotation happened; a label of `ac_key_rotations_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationTrigger {
    Scheduled,
    Manual,
}

impl RotationTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationTrigger::Scheduled => "scheduled",
            RotationTrigger::Manual => "manual",
        }
    }
}

/// Returns the active key's row, creating the very first key if there is none.
pub async fn ensure_active_key(pool: &PgPool, master: &MasterKey) -> anyhow::Result<SigningKeyRow> {
    let mut conn = pool.acquire().await.context("cannot reach the database")?;
    if let Some(row) = signing_keys::active(&mut conn).await? {
        return Ok(row);
    }
    drop(conn);

    let mut tx = pool.begin().await?;
    signing_keys::lock(&mut tx).await?;
    // Another replica may have created the key while this one waited for the lock.
    if signing_keys::active(&mut tx).await?.is_none() {
        let key = super::generate(master)?;
        signing_keys::insert(&mut tx, &key).await?;
        tracing::info!(kid = %key.kid, "created the first signing key");
    }
    let row = signing_keys::active(&mut tx)
        .await?
        .context("no active signing key after creating one")?;
    tx.commit().await?;
    Ok(row)
}

/// Replaces the active key with a new one; the old one stays published for `publish_for`.
///
/// With `only_if_older_than`, the rotation is scheduled: it happens only if the active key is at
/// least that old, and only if no other replica holds the lock right now (that replica is
/// rotating or creating already). Returns the new kid, or `None` if nothing was done.
pub async fn rotate(
    pool: &PgPool,
    master: &MasterKey,
    publish_for: Duration,
    only_if_older_than: Option<Duration>,
) -> anyhow::Result<Option<String>> {
    let mut tx = pool.begin().await?;
    match only_if_older_than {
        Some(age) => {
            if !signing_keys::try_lock(&mut tx).await? {
                return Ok(None);
            }
            if signing_keys::active_is_younger_than(&mut tx, age).await? {
                return Ok(None);
            }
        }
        None => signing_keys::lock(&mut tx).await?,
    }
    let key = super::generate(master)?;
    signing_keys::retire_active(&mut tx, publish_for).await?;
    signing_keys::insert(&mut tx, &key).await?;
    tx.commit().await?;
    Ok(Some(key.kid))
}
