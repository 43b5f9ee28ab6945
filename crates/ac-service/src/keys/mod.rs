//! Custody of the Ed25519 signing keys: generating them, sealing them at rest, rotating them,
//! and publishing their public halves as a JWKS.

pub mod envelope;
pub mod rotation;
pub mod store;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use secrecy::zeroize::Zeroize;

use crate::config::MasterKey;
use crate::db::signing_keys::{NewSigningKey, SigningKeyRow};
use envelope::{EnvelopeError, Sealed};

pub use store::KeyStore;

/// A decrypted key ready to sign. The private half exists only inside `encoding_key`.
pub struct SigningKey {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    encoding_key: EncodingKey,
}

impl SigningKey {
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding_key
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "cannot decrypt signing key {kid}: AC_MASTER_KEY is not the key it was sealed with, or the row was tampered with"
    )]
    WrongMasterKey { kid: String },
    #[error("signing key {kid} is corrupt: {reason}")]
    Corrupt { kid: String, reason: &'static str },
    #[error("cannot generate a signing key: {0}")]
    Generate(String),
}

/// Generates a new key pair and seals its private half for storage.
pub fn generate(master: &MasterKey) -> Result<NewSigningKey, KeyError> {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| KeyError::Generate("the system random generator failed".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| KeyError::Generate("ring rejected its own key".into()))?;
    let kid = new_kid().map_err(|e| KeyError::Generate(e.to_string()))?;
    let Sealed { ciphertext, nonce } = envelope::seal(master, &kid, pkcs8.as_ref())
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(NewSigningKey {
        kid,
        public_key: pair.public_key().as_ref().to_vec(),
        private_key_ciphertext: ciphertext,
        private_key_nonce: nonce,
    })
}

/// Opens a stored key. Fails (rather than carrying on with another key) when the master key is
/// wrong, so a misconfigured replica refuses to start instead of signing tokens nobody trusts.
pub fn open(master: &MasterKey, row: &SigningKeyRow) -> Result<SigningKey, KeyError> {
    let sealed = Sealed {
        ciphertext: row.private_key_ciphertext.clone(),
        nonce: row.private_key_nonce.clone(),
    };
    let mut pkcs8 = envelope::open(master, &row.kid, &sealed).map_err(|e| match e {
        EnvelopeError::Decrypt | EnvelopeError::BadKey => KeyError::WrongMasterKey {
            kid: row.kid.clone(),
        },
        _ => KeyError::Corrupt {
            kid: row.kid.clone(),
            reason: "bad nonce",
        },
    })?;
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8);
    let matches = pair
        .as_ref()
        .is_ok_and(|pair| pair.public_key().as_ref() == row.public_key.as_slice());
    let encoding_key = EncodingKey::from_ed_der(&pkcs8);
    pkcs8.zeroize();
    if !matches {
        return Err(KeyError::Corrupt {
            kid: row.kid.clone(),
            reason: "private key does not match the stored public key",
        });
    }
    Ok(SigningKey {
        kid: row.kid.clone(),
        public_key: row.public_key.clone(),
        created_at: row.created_at,
        encoding_key,
    })
}

/// The JWK of a public key, built from the raw key (jsonwebtoken's `Jwk::from_encoding_key`
/// does not accept ring's PKCS#8 v2 documents).
pub fn jwk(kid: &str, public_key: &[u8]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public_key),
        }),
    }
}

/// Key ids read as `k20261121-<random>`: sortable by day for operators, unguessable otherwise.
fn new_kid() -> anyhow::Result<String> {
    let day = chrono::Utc::now().format("%Y%m%d");
    Ok(format!(
        "k{day}-{}",
        crate::domain::secret::random_token(9)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8) -> MasterKey {
        MasterKey::from_bytes(vec![byte; 32]).unwrap()
    }

    fn row(new: NewSigningKey) -> SigningKeyRow {
        SigningKeyRow {
            kid: new.kid,
            public_key: new.public_key,
            private_key_ciphertext: new.private_key_ciphertext,
            private_key_nonce: new.private_key_nonce,
            created_at: chrono::Utc::now(),
            activates_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_generated_key_opens_and_signs_tokens_its_jwk_verifies() {
        let stored = row(generate(&master(3)).unwrap());
        assert_eq!(stored.public_key.len(), 32);
        let key = open(&master(3), &stored).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
        let token = jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap();
        let decoding =
            jsonwebtoken::DecodingKey::from_jwk(&jwk(&key.kid, &key.public_key)).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
    }

    #[test]
    fn opening_with_the_wrong_master_key_fails_clearly() {
        let stored = row(generate(&master(3)).unwrap());
        let error = open(&master(4), &stored).err().unwrap();
        assert!(matches!(error, KeyError::WrongMasterKey { .. }));
        assert!(error.to_string().contains("AC_MASTER_KEY"));
    }

    #[test]
    fn a_public_key_swapped_onto_another_row_is_detected() {
        let mut stored = row(generate(&master(3)).unwrap());
        stored.public_key = generate(&master(3)).unwrap().public_key;
        assert!(matches!(
            open(&master(3), &stored),
            Err(KeyError::Corrupt { .. })
        ));
    }

    #[test]
    fn the_jwk_has_the_published_shape() {
        let value = serde_json::to_value(jwk("kid-1", &[0u8; 32])).unwrap();
        assert_eq!(value["kty"], "OKP");
        assert_eq!(value["crv"], "Ed25519");
        assert_eq!(value["alg"], "EdDSA");
        assert_eq!(value["use"], "sig");
        assert_eq!(value["kid"], "kid-1");
        assert_eq!(value["x"], URL_SAFE_NO_PAD.encode([0u8; 32]));
    }
}
