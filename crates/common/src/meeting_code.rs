//! Meeting codes: the 12 characters of `0-9A-Za-z` in every join link. GC draws them; GC,
//! AC and MC parse them from paths, requests and tokens with the same rule.
//!
//! A code is the only thing a join link carries, so it must not be guessable: it is drawn from
//! the OS CSPRNG, and each character is uniform over the 62-letter alphabet (log2(62^12) ≈ 71.4
//! bits). Uniformity needs care: `byte % 62` alone favours the first 8 letters, because 256 is
//! not a multiple of 62. So bytes of 248 (= 4 · 62) and above are rejected and drawn again;
//! every letter then comes from exactly 4 of the 248 accepted byte values.

use std::fmt;

use ring::rand::SecureRandom;

/// The 62 letters of a code, in the order the mapping uses.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters in a code.
pub const CODE_LEN: usize = 12;

/// Bytes at or above this bound are rejected: it is the largest multiple of 62 that fits in a
/// byte, so the accepted range maps onto the alphabet evenly.
pub const ACCEPT_BELOW: u8 = 248;

/// Maps one random byte to a letter of the alphabet, or `None` when the byte must be rejected.
pub fn map_byte(byte: u8) -> Option<u8> {
    if byte >= ACCEPT_BELOW {
        return None;
    }
    ALPHABET.get(usize::from(byte % 62)).copied()
}

/// A well-formed meeting code.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MeetingCode(String);

impl MeetingCode {
    /// Draws a fresh code from `rng` (the OS CSPRNG in production).
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, ring::error::Unspecified> {
        // 97 % of bytes are accepted, so 24 bytes almost always give 12 letters in one draw.
        let mut code = String::with_capacity(CODE_LEN);
        let mut buf = [0u8; 2 * CODE_LEN];
        while code.len() < CODE_LEN {
            rng.fill(&mut buf)?;
            push_letters(&mut code, &buf);
        }
        Ok(Self(code))
    }

    /// Builds a code from a stream of random bytes, skipping rejected ones; `None` if the stream
    /// ends before 12 letters were accepted.
    pub fn from_random_bytes(bytes: &[u8]) -> Option<Self> {
        let mut code = String::with_capacity(CODE_LEN);
        push_letters(&mut code, bytes);
        (code.len() == CODE_LEN).then_some(Self(code))
    }

    /// Accepts a code from a URL or a database row, if it has the right shape.
    pub fn parse(s: &str) -> Option<Self> {
        let well_formed = s.len() == CODE_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric());
        well_formed.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn push_letters(code: &mut String, bytes: &[u8]) {
    for letter in bytes.iter().filter_map(|b| map_byte(*b)) {
        if code.len() == CODE_LEN {
            return;
        }
        code.push(char::from(letter));
    }
}

impl fmt::Display for MeetingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MeetingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeetingCode({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use ring::rand::SystemRandom;

    use super::*;

    fn is_code_shaped(s: &str) -> bool {
        s.len() == CODE_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
    }

    #[test]
    fn the_alphabet_is_the_62_ascii_letters_and_digits_without_repeats() {
        let unique: HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(unique.len(), 62);
        assert!(ALPHABET.iter().all(u8::is_ascii_alphanumeric));
    }

    #[test]
    fn every_letter_comes_from_exactly_four_accepted_byte_values() {
        let mut counts: HashMap<u8, usize> = HashMap::new();
        let mut rejected = 0;
        for byte in 0..=u8::MAX {
            match map_byte(byte) {
                Some(letter) => *counts.entry(letter).or_default() += 1,
                None => rejected += 1,
            }
        }
        assert_eq!(rejected, 256 - 248);
        assert_eq!(counts.len(), 62);
        assert!(counts.values().all(|&n| n == 4), "{counts:?}");
    }

    #[test]
    fn bytes_from_248_up_are_rejected_rather_than_wrapped() {
        for byte in 248..=u8::MAX {
            assert_eq!(map_byte(byte), None);
        }
        assert_eq!(map_byte(0), Some(b'0'));
        assert_eq!(map_byte(61), Some(b'z'));
        assert_eq!(map_byte(62), Some(b'0'));
        assert_eq!(map_byte(247), Some(b'z'));
    }

    #[test]
    fn from_random_bytes_skips_rejected_bytes_and_needs_twelve_accepted_ones() {
        let mut bytes = vec![255, 250, 248];
        bytes.extend(0..12u8);
        let code = MeetingCode::from_random_bytes(&bytes).unwrap();
        assert_eq!(code.as_str(), "0123456789AB");
        assert!(MeetingCode::from_random_bytes(&[1; 11]).is_none());
        assert!(MeetingCode::from_random_bytes(&[249; 64]).is_none());
    }

    #[test]
    fn generated_codes_are_twelve_letters_of_the_alphabet() {
        let rng = SystemRandom::new();
        for _ in 0..1_000 {
            let code = MeetingCode::generate(&rng).unwrap();
            assert!(is_code_shaped(code.as_str()), "{code}");
        }
    }

    #[test]
    fn ten_thousand_generated_codes_are_all_distinct() {
        let rng = SystemRandom::new();
        let codes: HashSet<String> = (0..10_000)
            .map(|_| MeetingCode::generate(&rng).unwrap().to_string())
            .collect();
        assert_eq!(codes.len(), 10_000);
        assert!(codes.iter().all(|c| is_code_shaped(c)));
    }

    #[test]
    fn generated_letters_are_uniform_over_the_alphabet() {
        // Chi-square over 62 letters (61 degrees of freedom): mean 61, standard deviation ≈ 11.
        // A fair generator exceeds 130 with probability below 1e-7; a `% 62` bias over 100k
        // letters scores in the thousands.
        let rng = SystemRandom::new();
        let mut counts = [0u64; 62];
        let mut total = 0u64;
        while total < 100_000 {
            let code = MeetingCode::generate(&rng).unwrap();
            for b in code.as_str().bytes() {
                let index = ALPHABET.iter().position(|&a| a == b).unwrap();
                counts[index] += 1;
                total += 1;
            }
        }
        let expected = total as f64 / 62.0;
        let chi_square: f64 = counts
            .iter()
            .map(|&n| (n as f64 - expected).powi(2) / expected)
            .sum();
        assert!(
            chi_square < 130.0,
            "chi-square {chi_square} over {counts:?}"
        );
    }

    #[test]
    fn a_modulo_only_mapping_would_fail_the_same_uniformity_check() {
        // Guards the test above: it must be able to see the bias it is there to catch.
        let mut counts = [0u64; 62];
        for _ in 0..400 {
            for byte in 0..=u8::MAX {
                counts[usize::from(byte % 62)] += 1;
            }
        }
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / 62.0;
        let chi_square: f64 = counts
            .iter()
            .map(|&n| (n as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi_square > 130.0, "chi-square {chi_square}");
    }

    #[test]
    fn parse_accepts_only_code_shaped_strings() {
        assert!(MeetingCode::parse("Ab3dE5fG7hJ9").is_some());
        assert!(MeetingCode::parse("Ab3dE5fG7hJ").is_none());
        assert!(MeetingCode::parse("Ab3dE5fG7hJ9x").is_none());
        assert!(MeetingCode::parse("Ab3dE5fG7h-9").is_none());
        assert!(MeetingCode::parse("Ab3dE5fG7hé").is_none());
    }
}
