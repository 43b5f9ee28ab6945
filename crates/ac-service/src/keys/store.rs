//! [`KeyStore`]: the replica's view of the signing keys.
//!
//! The signing key is held decrypted in memory (it signs every token) and reloaded from the
//! database every `key_refresh_interval` and right after this replica rotates; a key that
//! activated in between takes over at that reload. The published set (the pending key, the
//! signing key and retired keys still in their publication period) is read from the database
//! with a cache of about a second, so a key rotated by another replica appears in this
//! replica's JWKS almost at once. AC verifies bearer tokens against that same set, through the
//! verifier every Convene service uses.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::auth::VerifyToken;
use common::jwks::{JwksVerifier, VerifyError};
use common::jwt::TokenClaims;
use jsonwebtoken::jwk::JwkSet;
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::rotation::{self, Rotation, RotationTiming, RotationTrigger, Withdrawal};
use super::{SigningKey, jwk};
use crate::config::{Config, MasterKey, Safeguards};
use crate::db::signing_keys;

/// Clock skew tolerated on `exp` and `iat`, the same as every other verifier.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Extra time a retired key stays published beyond the longest token lifetime.
const PUBLISH_SAFETY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// What the key store needs from the configuration.
#[derive(Clone, Debug)]
pub struct KeySettings {
    pub issuer: String,
    pub rotation_interval: Duration,
    /// Time between a rotation publishing the next key and that key signing.
    pub activation_delay: Duration,
    /// How long a retired key stays in the JWKS after its retirement.
    pub publish_for: Duration,
    /// How stale the published set may be.
    pub jwks_cache_ttl: Duration,
}

impl KeySettings {
    pub fn from_config(config: &Config, safeguards: &Safeguards) -> KeySettings {
        KeySettings {
            issuer: config.jwt_issuer.clone(),
            rotation_interval: config.key_rotation_interval(),
            activation_delay: safeguards.key_activation_delay(),
            // A replica that has not reloaded yet may sign with the old key for up to one
            // refresh interval after its retirement; its tokens must still verify.
            publish_for: config.longest_token_ttl()
                + config.key_refresh_interval()
                + PUBLISH_SAFETY_MARGIN,
            jwks_cache_ttl: Duration::from_millis(config.jwks_cache_ttl_ms),
        }
    }

    fn timing(&self) -> RotationTiming {
        RotationTiming {
            activation_delay: self.activation_delay,
            publish_for: self.publish_for,
        }
    }
}

struct Published {
    fetched_at: Instant,
    jwks: Arc<JwkSet>,
}

struct Inner {
    pool: PgPool,
    master_key: MasterKey,
    settings: KeySettings,
    active: RwLock<Arc<SigningKey>>,
    published: Mutex<Option<Published>>,
    verifier: JwksVerifier,
}

/// Cheap to clone; clones share the keys.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

impl KeyStore {
    /// Loads (or, on a fresh database, creates) the signing key. Fails if the key cannot be
    /// decrypted with `master_key`.
    pub async fn load(
        pool: PgPool,
        master_key: MasterKey,
        settings: KeySettings,
    ) -> anyhow::Result<KeyStore> {
        let row = rotation::ensure_signing_key(&pool, &master_key).await?;
        let active = super::open(&master_key, &row)?;
        let verifier =
            JwksVerifier::from_jwks(&JwkSet::default(), settings.issuer.clone(), MAX_CLOCK_SKEW);
        let store = KeyStore {
            inner: Arc::new(Inner {
                pool,
                master_key,
                settings,
                active: RwLock::new(Arc::new(active)),
                published: Mutex::new(None),
                verifier,
            }),
        };
        store.published_jwks().await?;
        Ok(store)
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> Arc<SigningKey> {
        let guard = self
            .inner
            .active
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }

    /// Sets `ac_signing_key_age_seconds` from the key that signs now.
    pub fn record_age(&self) {
        crate::metrics::signing_key_age(
            self.active().created_at,
            self.inner.settings.rotation_interval,
        );
    }

    /// Reloads the signing key from the database: after a pending key activated, or after
    /// another replica rotated with no activation delay.
    pub async fn refresh_active(&self) -> anyhow::Result<()> {
        let mut conn = self.inner.pool.acquire().await?;
        let Some(row) = signing_keys::signing(&mut conn).await? else {
            // Only possible if someone deleted keys by hand; keep signing with what we have.
            tracing::warn!("no signing key in the database");
            return Ok(());
        };
        if row.kid == self.active().kid {
            return Ok(());
        }
        let key = super::open(&self.inner.master_key, &row)?;
        tracing::info!(kid = %key.kid, "switched to the current signing key");
        *self
            .inner
            .active
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// Rotates now (the admin endpoint): publishes the next key, which signs after the
    /// activation delay. If a key is already pending, returns that one.
    pub async fn rotate(&self) -> anyhow::Result<Rotation> {
        let rotation = rotation::rotate(
            &self.inner.pool,
            &self.inner.master_key,
            self.inner.settings.timing(),
            None,
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("rotation produced no key"))?;
        if rotation.created {
            self.after_rotation(&rotation, RotationTrigger::Manual)
                .await?;
        }
        Ok(rotation)
    }

    /// Withdraws a compromised key at once (the admin endpoint): it leaves the JWKS, this
    /// replica stops verifying and signing with it now, other replicas within their JWKS cache
    /// time (`AC_JWKS_CACHE_MS`). `None` if there is no key `kid`.
    pub async fn withdraw(&self, kid: &str) -> anyhow::Result<Option<Withdrawal>> {
        let withdrawal = rotation::withdraw(
            &self.inner.pool,
            &self.inner.master_key,
            self.inner.settings.timing(),
            kid,
        )
        .await?;
        if let Some(withdrawal) = &withdrawal {
            tracing::warn!(
                withdrawn_kid = %withdrawal.withdrawn_kid,
                signing_kid = %withdrawal.signing_kid,
                replaced = withdrawal.replaced,
                "withdrew a signing key"
            );
            crate::metrics::key_rotated(RotationTrigger::Emergency);
            *self.inner.published.lock().await = None;
            self.refresh_active().await?;
            self.published_jwks().await?;
        }
        Ok(withdrawal)
    }

    /// The key to sign with now. Goes through the published set (read from the database at most
    /// once per `jwks_cache_ttl`), so a replica stops signing with a key another replica has
    /// withdrawn within that time rather than at the next maintenance tick.
    pub async fn signing_key(&self) -> Arc<SigningKey> {
        if let Err(error) = self.published_jwks().await {
            tracing::warn!(%error, "cannot refresh the published keys; signing with the current key");
        }
        self.active()
    }

    /// Rotates if the newest key has been signing for longer than the rotation interval and no
    /// other replica is doing it. Returns the next key if this replica rotated.
    pub async fn rotate_if_due(&self) -> anyhow::Result<Option<Rotation>> {
        let rotated = rotation::rotate(
            &self.inner.pool,
            &self.inner.master_key,
            self.inner.settings.timing(),
            Some(self.inner.settings.rotation_interval),
        )
        .await?;
        if let Some(rotation) = &rotated {
            self.after_rotation(rotation, RotationTrigger::Scheduled)
                .await?;
        }
        Ok(rotated)
    }

    async fn after_rotation(
        &self,
        rotation: &Rotation,
        trigger: RotationTrigger,
    ) -> anyhow::Result<()> {
        tracing::info!(
            kid = %rotation.kid,
            activates_at = %rotation.activates_at,
            trigger = trigger.as_str(),
            "published the next signing key"
        );
        crate::metrics::key_rotated(trigger);
        *self.inner.published.lock().await = None;
        // With no activation delay the new key signs already.
        self.refresh_active().await?;
        self.published_jwks().await?;
        Ok(())
    }

    /// Deletes retired keys whose publication has ended, private halves included. Returns the
    /// kids deleted.
    pub async fn delete_unpublished(&self) -> Result<Vec<String>, sqlx::Error> {
        let deleted = signing_keys::delete_unpublished(&self.inner.pool).await?;
        if !deleted.is_empty() {
            tracing::info!(kids = ?deleted, "deleted retired signing keys");
        }
        Ok(deleted)
    }

    /// The JWKS to publish: the pending key, the signing key and every retired key still in its
    /// publication period. Read from the database at most once per `jwks_cache_ttl`.
    pub async fn published_jwks(&self) -> Result<Arc<JwkSet>, sqlx::Error> {
        let mut cache = self.inner.published.lock().await;
        if let Some(published) = cache.as_ref()
            && published.fetched_at.elapsed() < self.inner.settings.jwks_cache_ttl
        {
            return Ok(Arc::clone(&published.jwks));
        }
        let keys = signing_keys::published(&self.inner.pool).await?;
        let active = self.active().kid.clone();
        if !keys.iter().any(|key| key.kid == active) {
            // Our signing key is gone from the database: another replica withdrew it.
            if let Err(error) = self.refresh_active().await {
                tracing::error!(
                    error = format!("{error:#}"),
                    kid = %active,
                    "the signing key was withdrawn and its successor cannot be loaded"
                );
            }
        }
        let jwks = Arc::new(JwkSet {
            keys: keys.iter().map(|k| jwk(&k.kid, &k.public_key)).collect(),
        });
        self.inner.verifier.set_keys(&jwks).await;
        *cache = Some(Published {
            fetched_at: Instant::now(),
            jwks: Arc::clone(&jwks),
        });
        Ok(jwks)
    }

    pub fn issuer(&self) -> &str {
        &self.inner.settings.issuer
    }
}

/// AC verifies bearer tokens against its published set, with the same checks GC and MC apply.
impl VerifyToken for KeyStore {
    async fn verify_token<C: TokenClaims + Send>(&self, token: &str) -> Result<C, VerifyError> {
        if let Err(error) = self.published_jwks().await {
            // Verify against the last set we had; a database blip should not log everyone out.
            tracing::warn!(%error, "cannot refresh the published keys");
        }
        self.inner.verifier.verify::<C>(token).await
    }
}
