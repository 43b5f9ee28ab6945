//! AC's configuration, read from the environment (or flags) once at start-up.
//!
//! Every value is checked before the service binds a port, so a typo fails the deployment
//! instead of a request hours later. Secrets are kept in `secrecy` wrappers so they never show
//! up in `Debug` output or logs.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// Everything `ac-service serve` needs. Fields are public so tests can build one directly.
#[derive(Clone, Debug, Parser)]
#[command(about = "Run the auth controller's HTTP API")]
pub struct Config {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,

    /// Largest number of PostgreSQL connections this replica opens.
    #[arg(long, env = "AC_DB_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    /// Address the HTTP API listens on.
    #[arg(long, env = "AC_HTTP_ADDR", default_value = "0.0.0.0:8082")]
    pub http_addr: SocketAddr,

    /// The `iss` claim of every token, which every verifier checks.
    #[arg(long, env = "JWT_ISSUER", default_value = "convene-ac")]
    pub jwt_issuer: String,

    /// Base64 of exactly 32 random bytes: the AES-256-GCM key sealing the signing keys.
    #[arg(long, env = "AC_MASTER_KEY", hide_env_values = true, value_parser = MasterKey::parse)]
    pub master_key: MasterKey,

    /// Lifetime of user tokens.
    #[arg(long, env = "AC_USER_TOKEN_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub user_token_ttl_secs: u64,

    /// Lifetime of service tokens.
    #[arg(long, env = "AC_SERVICE_TOKEN_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub service_token_ttl_secs: u64,

    /// Default meeting-token lifetime; never more than 15 minutes.
    #[arg(long, env = "AC_MEETING_TOKEN_TTL_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(30..=86_400))]
    pub meeting_token_ttl_secs: u64,

    /// Age at which the active signing key is replaced (default 30 days).
    #[arg(long, env = "AC_KEY_ROTATION_INTERVAL_SECS", default_value_t = 30 * 24 * 3600,
          value_parser = clap::value_parser!(u64).range(60..))]
    pub key_rotation_interval_secs: u64,

    /// How often each replica reloads the active key and checks whether rotation is due.
    #[arg(long, env = "AC_KEY_REFRESH_INTERVAL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub key_refresh_interval_secs: u64,

    /// How stale the published key set may be, in milliseconds. Keys rotated by another replica
    /// show up in this replica's JWKS after at most this long.
    #[arg(long, env = "AC_JWKS_CACHE_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub jwks_cache_ttl_ms: u64,

    /// Failed sign-ins one account may have within the window; the next attempt is refused.
    #[arg(long, env = "AC_LOGIN_MAX_FAILURES_PER_ACCOUNT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub login_max_failures_per_account: u32,

    /// Failed sign-ins one client address may have within the window.
    #[arg(long, env = "AC_LOGIN_MAX_FAILURES_PER_IP", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub login_max_failures_per_ip: u32,

    /// Length of the sign-in failure window.
    #[arg(long, env = "AC_LOGIN_FAILURE_WINDOW_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub login_failure_window_secs: u64,

    /// Take the client address from the last `X-Forwarded-For` entry. Set it only behind a
    /// proxy that appends that header, or anyone can pick the address they are limited by.
    #[arg(long, env = "AC_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
}

impl Config {
    /// The documented defaults, for tests and tools that embed AC (e.g. GC's integration tests,
    /// which set `http_addr` to `127.0.0.1:0`). Production reads the environment instead.
    pub fn new(database_url: SecretString, master_key: MasterKey) -> Config {
        Config {
            database_url,
            db_max_connections: 10,
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8082)),
            jwt_issuer: "convene-ac".to_owned(),
            master_key,
            user_token_ttl_secs: 3600,
            service_token_ttl_secs: 3600,
            meeting_token_ttl_secs: 900,
            key_rotation_interval_secs: 30 * 24 * 3600,
            key_refresh_interval_secs: 30,
            jwks_cache_ttl_ms: 1000,
            login_max_failures_per_account: 5,
            login_max_failures_per_ip: 50,
            login_failure_window_secs: 900,
            trust_forwarded_for: false,
        }
    }

    /// Meeting-token lifetime after the hard cap of `common::jwt::MAX_MEETING_TOKEN_TTL_SECS`.
    pub fn meeting_token_ttl(&self) -> u64 {
        self.meeting_token_ttl_secs.min(max_meeting_ttl_secs())
    }

    /// The longest lifetime of any token AC issues: a retired key stays published this long
    /// (plus a margin) so every token it signed can still be verified.
    pub fn longest_token_ttl(&self) -> Duration {
        let secs = self
            .user_token_ttl_secs
            .max(self.service_token_ttl_secs)
            .max(self.meeting_token_ttl());
        Duration::from_secs(secs)
    }

    pub fn key_rotation_interval(&self) -> Duration {
        Duration::from_secs(self.key_rotation_interval_secs)
    }

    pub fn key_refresh_interval(&self) -> Duration {
        Duration::from_secs(self.key_refresh_interval_secs)
    }
}

pub(crate) fn max_meeting_ttl_secs() -> u64 {
    u64::try_from(common::jwt::MAX_MEETING_TOKEN_TTL_SECS).unwrap_or(900)
}

/// The 32-byte AES-256-GCM key that seals signing keys at rest.
#[derive(Clone)]
pub struct MasterKey(SecretSlice<u8>);

impl MasterKey {
    pub const LEN: usize = 32;

    /// Parses base64 (standard alphabet, padded or not) of exactly 32 bytes.
    pub fn parse(encoded: &str) -> Result<MasterKey, String> {
        let trimmed = encoded.trim().trim_end_matches('=');
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .map_err(|_| {
                "AC_MASTER_KEY must be base64 (e.g. `openssl rand -base64 32`)".to_owned()
            })?;
        MasterKey::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<MasterKey, String> {
        if bytes.len() != Self::LEN {
            return Err(format!(
                "AC_MASTER_KEY must decode to exactly {} bytes, got {}",
                Self::LEN,
                bytes.len()
            ));
        }
        Ok(MasterKey(SecretSlice::from(bytes)))
    }

    /// A fresh random key, for tests and for `ac-service` operators who need one.
    pub fn generate() -> anyhow::Result<MasterKey> {
        use ring::rand::SecureRandom;
        let mut bytes = vec![0u8; Self::LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
        MasterKey::from_bytes(bytes).map_err(anyhow::Error::msg)
    }

    /// Base64 of the key, for tests and tools that generate one.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.expose_secret())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_accepts_exactly_32_bytes_of_base64() {
        let key = MasterKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        assert_eq!(key.bytes(), &[7u8; 32]);
        assert!(MasterKey::parse(&STANDARD.encode([7u8; 31])).is_err());
        assert!(MasterKey::parse(&STANDARD.encode([7u8; 33])).is_err());
        assert!(MasterKey::parse("not base64!").is_err());
    }

    #[test]
    fn master_key_debug_never_shows_the_key() {
        let key = MasterKey::parse(&STANDARD.encode([0x41u8; 32])).unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey([redacted])");
    }

    #[test]
    fn config_reads_defaults_and_fails_without_a_master_key() {
        let config = Config::try_parse_from([
            "ac",
            "--database-url",
            "postgres://x",
            "--master-key",
            &STANDARD.encode([1u8; 32]),
        ])
        .unwrap();
        assert_eq!(config.http_addr.port(), 8082);
        assert_eq!(config.jwt_issuer, "convene-ac");
        assert_eq!(config.login_max_failures_per_account, 5);
        assert_eq!(config.longest_token_ttl(), Duration::from_secs(3600));
        let missing = Config::try_parse_from(["ac", "--database-url", "postgres://x"]);
        assert!(missing.is_err());
    }

    #[test]
    fn the_constructor_matches_the_command_line_defaults() {
        let key = MasterKey::generate().unwrap();
        let parsed = Config::try_parse_from([
            "ac",
            "--database-url",
            "postgres://x",
            "--master-key",
            &key.to_base64(),
        ])
        .unwrap();
        let built = Config::new("postgres://x".into(), key);
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
    }

    #[test]
    fn meeting_token_ttl_is_capped_at_fifteen_minutes() {
        let mut config = Config::try_parse_from([
            "ac",
            "--database-url",
            "postgres://x",
            "--master-key",
            &STANDARD.encode([1u8; 32]),
            "--meeting-token-ttl-secs",
            "7200",
        ])
        .unwrap();
        assert_eq!(config.meeting_token_ttl(), 900);
        config.meeting_token_ttl_secs = 60;
        assert_eq!(config.meeting_token_ttl(), 60);
    }
}
