//! The per-meeting `join_token_secret`.

use std::fmt;

use ring::rand::SecureRandom;

/// Bytes in a join-token secret.
pub const SECRET_LEN: usize = 32;

/// 32 bytes from the OS CSPRNG, stored on the meeting row for the join flow. It has no
/// `Serialize` and a redacting `Debug`, so it cannot end up in a response or a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinTokenSecret([u8; SECRET_LEN]);

impl JoinTokenSecret {
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, ring::error::Unspecified> {
        let mut bytes = [0u8; SECRET_LEN];
        rng.fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The raw bytes, for storage only.
    pub fn expose_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }
}

impl fmt::Debug for JoinTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JoinTokenSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;

    #[test]
    fn secrets_are_32_bytes_and_differ_between_draws() {
        let rng = SystemRandom::new();
        let a = JoinTokenSecret::generate(&rng).unwrap();
        let b = JoinTokenSecret::generate(&rng).unwrap();
        assert_eq!(a.expose_bytes().len(), 32);
        assert_ne!(a, b);
        assert_ne!(a.expose_bytes(), &[0u8; 32]);
    }

    #[test]
    fn debug_output_does_not_show_the_bytes() {
        let rng = SystemRandom::new();
        let secret = JoinTokenSecret::generate(&rng).unwrap();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "JoinTokenSecret([redacted])");
    }
}
