//! Argon2id hashing of passwords and client secrets.
//!
//! Hashing costs tens of milliseconds of CPU by design, so the async wrappers run it on the
//! blocking pool: on the async runtime it would stall every other request of the replica.
//! Parameters are the argon2 crate's defaults (Argon2id, 19 MiB, 2 passes, 1 lane), which are
//! OWASP's recommendation; the PHC string records them, so raising them later still verifies
//! old hashes.
//!
//! Anyone can make AC hash (a sign-in attempt costs nothing to send), so the server hashes
//! through a [`Hasher`], which runs a bounded number of hashes at once and turns callers away
//! when no slot frees up soon, instead of queueing work (and 19 MiB each) without bound.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hashes `secret` with a fresh 16-byte salt from the OS CSPRNG. Blocking.
pub fn hash_blocking(secret: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

/// Checks `secret` against a PHC string. A malformed hash never matches. Blocking.
pub fn verify_blocking(secret: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes off the async runtime.
pub async fn hash(secret: SecretString) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(secret.expose_secret()))
        .await
        .context("password hashing task failed")?
}

/// Verifies off the async runtime.
pub async fn verify(secret: SecretString, phc: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || verify_blocking(secret.expose_secret(), &phc))
        .await
        .context("password verification task failed")
}

/// Why a [`Hasher`] did not hash.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every slot stayed taken for the whole wait; the caller should come back later.
    #[error("no hashing capacity became free in time")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The replica's hashing capacity: at most `max_concurrent` hashes at once, shared by every
/// request. Cheap to clone; clones share the capacity.
#[derive(Clone, Debug)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    wait: Duration,
}

/// A reserved hashing slot, released on drop.
#[derive(Debug)]
pub struct HashSlot {
    _permit: OwnedSemaphorePermit,
}

impl Hasher {
    /// A capacity of `max_concurrent` hashes (at least one); a caller waits at most `wait` for
    /// a free slot.
    pub fn new(max_concurrent: usize, wait: Duration) -> Hasher {
        Hasher {
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            wait,
        }
    }

    /// Reserves a slot, waiting at most the configured time.
    pub async fn reserve(&self) -> Result<HashSlot, HashError> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(HashSlot { _permit: permit }),
            // The semaphore is never closed; treat it like a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(HashError::Busy),
        }
    }

    /// Hashes off the async runtime, within the capacity.
    pub async fn hash(&self, secret: SecretString) -> Result<String, HashError> {
        let slot = self.reserve().await?;
        // The slot moves into the blocking task: if the request is dropped meanwhile, the hash
        // still runs to the end and keeps its slot until then.
        let hashed = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            hash_blocking(secret.expose_secret())
        })
        .await
        .context("password hashing task failed")?;
        Ok(hashed?)
    }

    /// Verifies off the async runtime, within the capacity.
    pub async fn verify(&self, secret: SecretString, phc: String) -> Result<bool, HashError> {
        let slot = self.reserve().await?;
        let matches = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            verify_blocking(secret.expose_secret(), &phc)
        })
        .await
        .context("password verification task failed")?;
        Ok(matches)
    }
}

/// A hash of a random secret nobody knows, made once at start-up. Sign-in attempts for unknown
/// e-mail addresses or client ids are verified against it, so they take as long as attempts
/// against real accounts and the timing does not reveal which addresses exist.
#[derive(Clone)]
pub struct DummyHash(String);

impl DummyHash {
    pub async fn generate() -> anyhow::Result<DummyHash> {
        let secret = super::secret::random_token(32)?;
        Ok(DummyHash(hash(SecretString::from(secret)).await?))
    }

    pub fn phc(&self) -> String {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let phc = hash_blocking("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("correct horse"));
        assert!(verify_blocking("correct horse", &phc));
        assert!(!verify_blocking("correct horse!", &phc));
        assert!(!verify_blocking("correct horse", "not a phc string"));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let a = hash_blocking("same password").unwrap();
        let b = hash_blocking("same password").unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn async_wrappers_round_trip() {
        let phc = hash(SecretString::from("pa55word")).await.unwrap();
        assert!(
            verify(SecretString::from("pa55word"), phc.clone())
                .await
                .unwrap()
        );
        assert!(!verify(SecretString::from("other"), phc).await.unwrap());
        let dummy = DummyHash::generate().await.unwrap();
        assert!(
            !verify(SecretString::from("pa55word"), dummy.phc())
                .await
                .unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hasher_with_every_slot_taken_turns_callers_away_after_the_wait() {
        let hasher = Hasher::new(2, Duration::from_secs(2));
        let phc = hash_blocking("pa55word").unwrap();
        let first = hasher.reserve().await.unwrap();
        let second = hasher.reserve().await.unwrap();

        let started = tokio::time::Instant::now();
        let refused = hasher
            .verify(SecretString::from("pa55word"), phc.clone())
            .await;

        assert!(matches!(refused, Err(HashError::Busy)));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(matches!(
            hasher.hash(SecretString::from("pa55word")).await,
            Err(HashError::Busy)
        ));
        drop(first);
        assert!(
            hasher
                .verify(SecretString::from("pa55word"), phc)
                .await
                .unwrap()
        );
        drop(second);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_gets_a_slot_that_frees_up_within_the_wait() {
        let hasher = Hasher::new(1, Duration::from_secs(2));
        let held = hasher.reserve().await.unwrap();
        let waiting = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.hash(SecretString::from("pa55word")).await }
        });
        // On the paused clock this lets the waiter run until it blocks on the full hasher.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());

        drop(held);

        let phc = waiting.await.unwrap().unwrap();
        assert!(verify_blocking("pa55word", &phc));
    }
}
