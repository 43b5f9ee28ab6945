//! Argon2id hashing of passwords and client secrets.
//!
//! Hashing costs tens of milliseconds of CPU by design, so the async wrappers run it on the
//! blocking pool: on the async runtime it would stall every other request of the replica.
//! Parameters are the argon2 crate's defaults (Argon2id, 19 MiB, 2 passes, 1 lane), which are
//! OWASP's recommendation; the PHC string records them, so raising them later still verifies
//! old hashes.

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

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
}
