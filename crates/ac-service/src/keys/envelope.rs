//! Sealing of private keys at rest under the master key (`AC_MASTER_KEY`): the shared
//! envelope of `common::envelope` (AES-256-GCM, a random nonce), with the key's `kid` as the
//! row binding, so a ciphertext copied onto another row fails to open instead of silently
//! becoming that row's key.

pub use common::envelope::{EnvelopeError, Sealed};

use crate::config::MasterKey;

/// Encrypts `plaintext` for the row named `kid`.
pub fn seal(master: &MasterKey, kid: &str, plaintext: &[u8]) -> Result<Sealed, EnvelopeError> {
    common::envelope::seal(master.bytes(), kid, plaintext)
}

/// Decrypts a sealed key of the row named `kid`.
pub fn open(master: &MasterKey, kid: &str, sealed: &Sealed) -> Result<Vec<u8>, EnvelopeError> {
    common::envelope::open(master.bytes(), kid, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_sealed_under_the_master_key_opens_only_for_its_kid() {
        let master = MasterKey::from_bytes(vec![1; 32]).unwrap();
        let sealed = seal(&master, "kid-1", b"private key bytes").unwrap();
        assert_eq!(
            open(&master, "kid-1", &sealed).unwrap(),
            b"private key bytes"
        );
        assert_eq!(open(&master, "kid-2", &sealed), Err(EnvelopeError::Decrypt));
        let other = MasterKey::from_bytes(vec![2; 32]).unwrap();
        assert_eq!(open(&other, "kid-1", &sealed), Err(EnvelopeError::Decrypt));
    }
}
