//! Sealing of private keys at rest: AES-256-GCM under the master key, with a random 96-bit nonce
//! and the key's `kid` as associated data. The `kid` binding means a ciphertext copied onto
//! another row fails to open instead of silently becoming that row's key.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::MasterKey;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("the master key is not a valid AES-256 key")]
    BadMasterKey,
    #[error("the system random generator failed")]
    Random,
    #[error("the stored nonce is not {NONCE_LEN} bytes")]
    BadNonce,
    /// Wrong master key, wrong kid, or tampered ciphertext: GCM cannot tell them apart.
    #[error("decryption failed: wrong master key or tampered ciphertext")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// A sealed private key as stored in `signing_keys`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

fn aead_key(master: &MasterKey) -> Result<LessSafeKey, EnvelopeError> {
    let unbound =
        UnboundKey::new(&AES_256_GCM, master.bytes()).map_err(|_| EnvelopeError::BadMasterKey)?;
    Ok(LessSafeKey::new(unbound))
}

/// Encrypts `plaintext` for the row named `kid`.
pub fn seal(master: &MasterKey, kid: &str, plaintext: &[u8]) -> Result<Sealed, EnvelopeError> {
    let key = aead_key(master)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| EnvelopeError::Random)?;
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(kid.as_bytes()),
        &mut in_out,
    )
    .map_err(|_| EnvelopeError::Encrypt)?;
    Ok(Sealed {
        ciphertext: in_out,
        nonce: nonce.to_vec(),
    })
}

/// Decrypts a sealed key of the row named `kid`.
pub fn open(master: &MasterKey, kid: &str, sealed: &Sealed) -> Result<Vec<u8>, EnvelopeError> {
    let key = aead_key(master)?;
    let nonce: [u8; NONCE_LEN] = sealed
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::BadNonce)?;
    let mut in_out = sealed.ciphertext.clone();
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kid.as_bytes()),
            &mut in_out,
        )
        .map_err(|_| EnvelopeError::Decrypt)?;
    Ok(plaintext.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8) -> MasterKey {
        MasterKey::from_bytes(vec![byte; 32]).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_with_the_same_master_key_and_kid() {
        let sealed = seal(&master(1), "kid-1", b"private key bytes").unwrap();
        assert_ne!(sealed.ciphertext, b"private key bytes");
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_eq!(
            open(&master(1), "kid-1", &sealed).unwrap(),
            b"private key bytes"
        );
    }

    #[test]
    fn opening_fails_with_another_master_key_another_kid_or_a_flipped_bit() {
        let sealed = seal(&master(1), "kid-1", b"private key bytes").unwrap();
        assert_eq!(
            open(&master(2), "kid-1", &sealed),
            Err(EnvelopeError::Decrypt)
        );
        assert_eq!(
            open(&master(1), "kid-2", &sealed),
            Err(EnvelopeError::Decrypt)
        );
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(
            open(&master(1), "kid-1", &tampered),
            Err(EnvelopeError::Decrypt)
        );
        let mut bad_nonce = sealed;
        bad_nonce.nonce.pop();
        assert_eq!(
            open(&master(1), "kid-1", &bad_nonce),
            Err(EnvelopeError::BadNonce)
        );
    }

    #[test]
    fn two_seals_of_the_same_plaintext_use_different_nonces() {
        let a = seal(&master(1), "k", b"same").unwrap();
        let b = seal(&master(1), "k", b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }
}
