//! Creating the first key and rotating keys, safely across replicas.
//!
//! Both happen in a transaction holding a PostgreSQL advisory lock, so two replicas starting or
//! rotating at once do not both create a key; the exclusion constraint on `signing_keys` (no
//! two signing intervals overlap) backs this up.
//!
//! A rotation publishes the next key before it signs. It is inserted to activate after the
//! activation delay, and the current key retires at that same moment. Verifiers refetch the
//! JWKS at most every 10 s, so a key that signed the moment it was created could reach a
//! verifier that fetched the set just before and is not allowed to fetch again yet; a key
//! published a minute before its first token cannot. The retired key stays published long
//! enough for every token it signed, including tokens signed by replicas that have not yet
//! switched, to expire.

use common::db::Bounded;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::config::MasterKey;
use crate::db::signing_keys::{self, SigningKeyRow};

/// Why a rotation happened; a label of `ac_key_rotations_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationTrigger {
    Scheduled,
    Manual,
    /// A compromised key withdrawn (`POST /api/v1/admin/keys/{kid}/withdraw`).
    Emergency,
}

impl RotationTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationTrigger::Scheduled => "scheduled",
            RotationTrigger::Manual => "manual",
            RotationTrigger::Emergency => "emergency",
        }
    }
}

/// How rotations are paced.
#[derive(Clone, Copy, Debug)]
pub struct RotationTiming {
    /// Time between publishing the next key and its first signature (0: at once).
    pub activation_delay: Duration,
    /// How long a retired key stays published after its retirement.
    pub publish_for: Duration,
}

/// The next key after a rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub kid: String,
    /// When it starts signing, by the database's clock.
    pub activates_at: DateTime<Utc>,
    /// False when a manual rotation found a key already pending and returned that one.
    pub created: bool,
}

/// Returns the key that signs now, creating the very first key if there is none. The first key
/// signs at once: there are no tokens yet that a verifier could be missing a key for.
pub async fn ensure_signing_key(
    pool: &PgPool,
    master: &MasterKey,
) -> anyhow::Result<SigningKeyRow> {
    let mut conn = pool.acquire().await.context("cannot reach the database")?;
    if let Some(row) = signing_keys::signing(&mut conn).await? {
        return Ok(row);
    }
    drop(conn);

    let mut tx = pool.begin().bounded().await?;
    signing_keys::lock(&mut tx).await?;
    // Another replica may have created the key while this one waited for the lock.
    if signing_keys::signing(&mut tx).await?.is_none() {
        match signing_keys::newest(&mut tx, Duration::ZERO).await? {
            None => {
                let key = super::generate(master)?;
                signing_keys::insert(&mut tx, &key, Duration::ZERO).await?;
                tracing::info!(kid = %key.kid, "created the first signing key");
            }
            // Only reachable if the signing key was deleted by hand: waiting for the pending
            // key would leave nothing to sign with.
            Some(pending) => {
                signing_keys::activate_newest_now(&mut tx).await?;
                tracing::warn!(kid = %pending.kid, "no key was signing; activated the pending key at once");
            }
        }
    }
    let row = signing_keys::signing(&mut tx)
        .await?
        .context("no signing key after creating one")?;
    tx.commit().bounded().await?;
    Ok(row)
}

/// Publishes a new key that takes over signing after `timing.activation_delay`.
///
/// With `only_if_older_than`, the rotation is scheduled: it happens only if the newest key has
/// been signing for at least that long (a pending key is never rotated away), and only if no
/// other replica holds the lock right now (that replica is rotating or creating already).
/// Returns `None` if nothing was done.
///
/// Without it, the rotation is manual: it waits for the lock, and if a key is already pending
/// it returns that key instead of stacking another one behind it.
pub async fn rotate(
    pool: &PgPool,
    master: &MasterKey,
    timing: RotationTiming,
    only_if_older_than: Option<Duration>,
) -> anyhow::Result<Option<Rotation>> {
    let mut tx = pool.begin().bounded().await?;
    match only_if_older_than {
        Some(age) => {
            if !signing_keys::try_lock(&mut tx).await? {
                return Ok(None);
            }
            let due = signing_keys::newest(&mut tx, age)
                .await?
                .is_some_and(|newest| !newest.pending && newest.older_than_age);
            if !due {
                return Ok(None);
            }
        }
        None => {
            signing_keys::lock(&mut tx).await?;
            if let Some(newest) = signing_keys::newest(&mut tx, Duration::ZERO).await?
                && newest.pending
            {
                return Ok(Some(Rotation {
                    kid: newest.kid,
                    activates_at: newest.activates_at,
                    created: false,
                }));
            }
        }
    }
    let key = super::generate(master)?;
    // Retire first: the next key's interval may only begin where the current one ends.
    signing_keys::retire_newest(&mut tx, timing.activation_delay, timing.publish_for).await?;
    let activates_at = signing_keys::insert(&mut tx, &key, timing.activation_delay).await?;
    tx.commit().bounded().await?;
    Ok(Some(Rotation {
        kid: key.kid,
        activates_at,
        created: true,
    }))
}

/// The outcome of withdrawing a compromised key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub withdrawn_kid: String,
    /// The key that signs from now on.
    pub signing_kid: String,
    /// A new key was created to sign at once (the withdrawn key was signing or pending).
    pub replaced: bool,
}

/// Withdraws `kid` at once: the key is deleted, so it leaves the JWKS and no replica can sign
/// or verify with it any more. If it was signing or pending, a new key signs from this instant,
/// with no activation delay: the verifiers that have not fetched it yet fetch it when they first
/// meet its `kid`, and a short refusal of fresh tokens is better than trusting a compromised
/// key. `None` if there is no key `kid`.
pub async fn withdraw(
    pool: &PgPool,
    master: &MasterKey,
    timing: RotationTiming,
    kid: &str,
) -> anyhow::Result<Option<Withdrawal>> {
    let mut tx = pool.begin().bounded().await?;
    signing_keys::lock(&mut tx).await?;
    let Some(withdrawn) = signing_keys::delete(&mut tx, kid).await? else {
        return Ok(None);
    };
    let replaced = withdrawn.was_current;
    if replaced {
        let key = super::generate(master)?;
        signing_keys::retire_all_now(&mut tx, timing.publish_for).await?;
        signing_keys::insert(&mut tx, &key, Duration::ZERO).await?;
    }
    let signing = signing_keys::signing(&mut tx)
        .await?
        .context("no signing key after withdrawing one")?;
    tx.commit().bounded().await?;
    Ok(Some(Withdrawal {
        withdrawn_kid: kid.to_owned(),
        signing_kid: signing.kid,
        replaced,
    }))
}
