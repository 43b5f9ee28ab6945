//! Sealing of secrets at rest: AES-256-GCM under a 32-byte key from the environment, with a
//! random 96-bit nonce and the row's id as associated data. The id binding means a ciphertext
//! copied onto another row fails to open instead of silently becoming that row's secret. AC
//! seals its signing keys this way (`AC_MASTER_KEY`), GC its webhooks' secrets
//! (`GC_WEBHOOK_KEY`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes in a sealing key.
pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("the sealing key is not a valid AES-256 key")]
    BadKey,
    #[error("the system random generator failed")]
    Random,
    #[error("the stored nonce is not {NONCE_LEN} bytes")]
    BadNonce,
    /// Wrong key, wrong row, or tampered ciphertext: GCM cannot tell them apart.
    #[error("decryption failed: wrong key or tampered ciphertext")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// A sealed secret as stored: the ciphertext with its tag, and the nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

/// Parses the base64 (standard alphabet, padded or not) of a sealing key from the environment
/// variable `name`: exactly [`KEY_LEN`] bytes, or an error that names the variable.
pub fn parse_key(name: &str, encoded: &str) -> Result<Vec<u8>, String> {
    let trimmed = encoded.trim().trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(trimmed)
        .map_err(|_| format!("{name} must be base64 (e.g. `openssl rand -base64 32`)"))?;
    if bytes.len() != KEY_LEN {
        return Err(format!(
            "{name} must decode to exactly {KEY_LEN} bytes, got {}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn aead_key(key: &[u8]) -> Result<LessSafeKey, EnvelopeError> {
    let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| EnvelopeError::BadKey)?;
    Ok(LessSafeKey::new(unbound))
}

/// Encrypts `plaintext` for the row named `row`.
pub fn seal(key: &[u8], row: &str, plaintext: &[u8]) -> Result<Sealed, EnvelopeError> {
    let key = aead_key(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| EnvelopeError::Random)?;
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(row.as_bytes()),
        &mut in_out,
    )
    .map_err(|_| EnvelopeError::Encrypt)?;
    Ok(Sealed {
        ciphertext: in_out,
        nonce: nonce.to_vec(),
    })
}

/// Decrypts a secret sealed for the row named `row`.
pub fn open(key: &[u8], row: &str, sealed: &Sealed) -> Result<Vec<u8>, EnvelopeError> {
    let key = aead_key(key)?;
    let nonce: [u8; NONCE_LEN] = sealed
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::BadNonce)?;
    let mut in_out = sealed.ciphertext.clone();
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(row.as_bytes()),
            &mut in_out,
        )
        .map_err(|_| EnvelopeError::Decrypt)?;
    Ok(plaintext.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_and_row() {
        let sealed = seal(&[1; 32], "kid-1", b"private key bytes").unwrap();
        assert_ne!(sealed.ciphertext, b"private key bytes");
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_eq!(
            open(&[1; 32], "kid-1", &sealed).unwrap(),
            b"private key bytes"
        );
    }

    #[test]
    fn opening_fails_with_another_key_another_row_or_a_flipped_bit() {
        let sealed = seal(&[1; 32], "kid-1", b"private key bytes").unwrap();
        assert_eq!(
            open(&[2; 32], "kid-1", &sealed),
            Err(EnvelopeError::Decrypt)
        );
        assert_eq!(
            open(&[1; 32], "kid-2", &sealed),
            Err(EnvelopeError::Decrypt)
        );
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(
            open(&[1; 32], "kid-1", &tampered),
            Err(EnvelopeError::Decrypt)
        );
        let mut bad_nonce = sealed;
        bad_nonce.nonce.pop();
        assert_eq!(
            open(&[1; 32], "kid-1", &bad_nonce),
            Err(EnvelopeError::BadNonce)
        );
        assert_eq!(seal(&[1; 31], "k", b"x"), Err(EnvelopeError::BadKey));
    }

    #[test]
    fn two_seals_of_the_same_plaintext_use_different_nonces() {
        let a = seal(&[1; 32], "k", b"same").unwrap();
        let b = seal(&[1; 32], "k", b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn a_key_is_exactly_32_bytes_of_base64_and_errors_name_the_variable() {
        use base64::engine::general_purpose::STANDARD;
        assert_eq!(
            parse_key("K", &STANDARD.encode([3u8; 32])).unwrap(),
            vec![3u8; 32]
        );
        assert_eq!(
            parse_key("K", &STANDARD_NO_PAD.encode([3u8; 32])).unwrap(),
            vec![3u8; 32]
        );
        let short = parse_key("GC_WEBHOOK_KEY", &STANDARD.encode([3u8; 31])).unwrap_err();
        assert!(
            short.contains("GC_WEBHOOK_KEY") && short.contains("31"),
            "{short}"
        );
        let garbage = parse_key("GC_WEBHOOK_KEY", "not base64!").unwrap_err();
        assert!(garbage.contains("GC_WEBHOOK_KEY"), "{garbage}");
    }
}
