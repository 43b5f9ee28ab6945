//! AC's configuration, read from the environment (or flags) once at start-up.
//!
//! Every value is checked before the service binds a port, so a typo fails the deployment
//! instead of a request hours later. Secrets are kept in `secrecy` wrappers so they never show
//! up in `Debug` output or logs.
//!
//! The settings come in two structs: [`Config`] and [`Safeguards`]. They are one configuration
//! (`ac-service serve` reads both, and [`check`] validates them together); the split only
//! exists because other crates' tests build a `Config` field by field, and a setting added
//! there would break them. New settings with a safe default go into `Safeguards`.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use common::shell::ShellSettings;
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

    /// Address of the ops listener: `/health/live`, `/health/ready` and `/metrics` only, with
    /// small bounds of its own, for the kubelet's probes and Prometheus. A flood that fills the
    /// API's listener cannot reach them here.
    #[arg(long, env = "AC_OPS_ADDR", default_value = "0.0.0.0:9082")]
    pub ops_addr: SocketAddr,

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

    /// Default meeting-token lifetime: 60 s to 15 minutes (DESIGN §2 caps meeting tokens at
    /// 15 minutes; a larger value is refused rather than quietly reduced).
    #[arg(long, env = "AC_MEETING_TOKEN_TTL_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(60..=MAX_MEETING_TOKEN_TTL_SECS))]
    pub meeting_token_ttl_secs: u64,

    /// Age at which the active signing key is replaced (default 30 days).
    #[arg(long, env = "AC_KEY_ROTATION_INTERVAL_SECS", default_value_t = 30 * 24 * 3600,
          value_parser = clap::value_parser!(u64).range(60..))]
    pub key_rotation_interval_secs: u64,

    /// How often each replica reloads the signing key (picking up a key that has activated),
    /// checks whether rotation is due and deletes keys whose publication has ended.
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

    /// Failed sign-ins and client authentications one client address (an IPv4 address or an
    /// IPv6 /64) may have within the window.
    #[arg(long, env = "AC_LOGIN_MAX_FAILURES_PER_IP", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub login_max_failures_per_ip: u32,

    /// Length of the failure window of sign-ins and client authentications.
    #[arg(long, env = "AC_LOGIN_FAILURE_WINDOW_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub login_failure_window_secs: u64,

    /// Take the client address from the last `X-Forwarded-For` entry. Set it only behind a
    /// proxy that appends that header, or anyone can pick the address they are limited by.
    #[arg(long, env = "AC_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// Origins of web pages allowed to sign in from a browser (CORS on
    /// `POST /api/v1/auth/user/token` only), comma-separated: GC's public origin when it serves
    /// the meeting page (`https://meet.example.com`). Empty: no browser page may call AC.
    #[arg(long, env = "AC_CORS_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_allowed_origins: Vec<String>,
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after it.
fn parse_origin(value: &str) -> Result<String, String> {
    let (scheme, authority) = value
        .split_once("://")
        .ok_or_else(|| format!("{value:?} is not an origin (scheme://host[:port])"))?;
    let valid = matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if valid {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(format!(
            "{value:?} is not an origin (scheme://host[:port], no path)"
        ))
    }
}

impl Config {
    /// The documented defaults, for tests and tools that embed AC (e.g. GC's integration tests,
    /// which set `http_addr` and `ops_addr` to `127.0.0.1:0`). Production reads the environment
    /// instead.
    pub fn new(database_url: SecretString, master_key: MasterKey) -> Config {
        Config {
            database_url,
            db_max_connections: 10,
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8082)),
            ops_addr: SocketAddr::from(([0, 0, 0, 0], 9082)),
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
            cors_allowed_origins: Vec::new(),
        }
    }

    /// The longest lifetime of any token AC issues: a retired key stays published this long
    /// (plus a margin) so every token it signed can still be verified.
    pub fn longest_token_ttl(&self) -> Duration {
        let secs = self
            .user_token_ttl_secs
            .max(self.service_token_ttl_secs)
            .max(self.meeting_token_ttl_secs);
        Duration::from_secs(secs)
    }

    pub fn key_rotation_interval(&self) -> Duration {
        Duration::from_secs(self.key_rotation_interval_secs)
    }

    pub fn key_refresh_interval(&self) -> Duration {
        Duration::from_secs(self.key_refresh_interval_secs)
    }
}

/// The longest meeting token AC signs (`common::jwt::MAX_MEETING_TOKEN_TTL_SECS`), as the
/// unsigned number clap's range wants; the unit test below keeps the two equal.
pub const MAX_MEETING_TOKEN_TTL_SECS: u64 = 15 * 60;

/// How often, at most, a verifier refetches the JWKS (`common::jwks::VerifierConfig::new`).
const VERIFIER_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// The settings that bound what anonymous callers can make AC do, and that pace key
/// activation. See the module documentation for why they are not in [`Config`].
#[derive(Clone, Debug, Parser)]
pub struct Safeguards {
    /// Argon2id computations (sign-ins, client authentications, new passwords and secrets)
    /// this replica runs at once; each holds about 19 MiB. Default: twice the CPU count.
    #[arg(long, env = "AC_MAX_CONCURRENT_HASHES",
          default_value_t = default_max_concurrent_hashes(),
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_concurrent_hashes: u32,

    /// How long a request waits for a free hashing slot before it is answered 503.
    #[arg(long, env = "AC_HASH_WAIT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(0..=30_000))]
    pub hash_wait_ms: u64,

    /// Failed client authentications one client id may have within the failure window. Off by
    /// default: client ids are not secret, so a per-id lock-out would let anyone who can reach
    /// AC lock GC or MC out, while 256-bit generated secrets make guessing hopeless anyway.
    /// The per-address budget and the hashing cap bound the work either way.
    #[arg(long, env = "AC_CLIENT_MAX_FAILURES_PER_CLIENT",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub client_max_failures_per_client: Option<u32>,

    /// Time between a rotation publishing the next signing key and that key signing, so
    /// verifiers see it before its first token. 0 (tests only) or at least
    /// AC_JWKS_CACHE_MS + 20 s.
    #[arg(long, env = "AC_KEY_ACTIVATION_DELAY_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub key_activation_delay_secs: u64,

    /// Connection bounds, timeouts and stop timings of the listener.
    #[command(flatten)]
    pub shell: ShellSettings,
}

impl Default for Safeguards {
    /// The documented defaults, the same as the command line's.
    fn default() -> Self {
        Safeguards {
            max_concurrent_hashes: default_max_concurrent_hashes(),
            hash_wait_ms: 2000,
            client_max_failures_per_client: None,
            key_activation_delay_secs: 60,
            shell: ShellSettings::default(),
        }
    }
}

impl Safeguards {
    pub fn hash_wait(&self) -> Duration {
        Duration::from_millis(self.hash_wait_ms)
    }

    pub fn key_activation_delay(&self) -> Duration {
        Duration::from_secs(self.key_activation_delay_secs)
    }
}

fn default_max_concurrent_hashes() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    u32::try_from(cpus.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .clamp(1, 1024)
}

/// Checks what clap cannot: rules across settings, and values of a configuration built in code
/// rather than parsed. `Application::build` calls it, so a bad value stops start-up.
pub fn check(config: &Config, safeguards: &Safeguards) -> Result<(), String> {
    if !(60..=MAX_MEETING_TOKEN_TTL_SECS).contains(&config.meeting_token_ttl_secs) {
        return Err(format!(
            "AC_MEETING_TOKEN_TTL_SECS must be between 60 and {MAX_MEETING_TOKEN_TTL_SECS}"
        ));
    }
    // A pending key must be in every replica's JWKS (after at most AC_JWKS_CACHE_MS) and then
    // within reach of a verifier that fetched just before (after at most its refetch interval)
    // before it signs; twice that interval leaves room for slow fetches.
    let delay = safeguards.key_activation_delay();
    let needed = Duration::from_millis(config.jwks_cache_ttl_ms) + 2 * VERIFIER_REFETCH_INTERVAL;
    if !delay.is_zero() && delay < needed {
        return Err(format!(
            "AC_KEY_ACTIVATION_DELAY_SECS must be 0 (tests only) or at least {} s \
             (AC_JWKS_CACHE_MS + 20 s), so verifiers see a new key before it signs",
            needed.as_secs_f64().ceil()
        ));
    }
    if safeguards.max_concurrent_hashes == 0 {
        return Err("AC_MAX_CONCURRENT_HASHES must be at least 1".to_owned());
    }
    Ok(())
}

/// The 32-byte AES-256-GCM key that seals signing keys at rest.
#[derive(Clone)]
pub struct MasterKey(SecretSlice<u8>);

impl MasterKey {
    pub const LEN: usize = 32;

    /// Parses base64 (standard alphabet, padded or not) of exactly 32 bytes.
    pub fn parse(encoded: &str) -> Result<MasterKey, String> {
        common::envelope::parse_key("AC_MASTER_KEY", encoded).and_then(MasterKey::from_bytes)
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

    fn parse_with(args: &[&str]) -> Result<Config, clap::Error> {
        let key = STANDARD.encode([1u8; 32]);
        let mut argv = vec!["ac", "--database-url", "postgres://x", "--master-key", &key];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv)
    }

    #[test]
    fn a_meeting_token_ttl_above_fifteen_minutes_fails_start_up_instead_of_being_reduced() {
        assert!(parse_with(&["--meeting-token-ttl-secs", "901"]).is_err());
        assert!(parse_with(&["--meeting-token-ttl-secs", "7200"]).is_err());
        assert!(parse_with(&["--meeting-token-ttl-secs", "59"]).is_err());
        let longest = parse_with(&["--meeting-token-ttl-secs", "900"]).unwrap();
        assert_eq!(longest.meeting_token_ttl_secs, 900);
        let shortest = parse_with(&["--meeting-token-ttl-secs", "60"]).unwrap();
        assert!(check(&shortest, &Safeguards::default()).is_ok());

        let mut built = Config::new("postgres://x".into(), MasterKey::generate().unwrap());
        built.meeting_token_ttl_secs = 7200;
        let error = check(&built, &Safeguards::default()).unwrap_err();
        assert!(error.contains("AC_MEETING_TOKEN_TTL_SECS"), "{error}");
    }

    #[test]
    fn the_meeting_token_cap_matches_the_one_verifiers_use() {
        assert_eq!(
            i64::try_from(MAX_MEETING_TOKEN_TTL_SECS).unwrap(),
            common::jwt::MAX_MEETING_TOKEN_TTL_SECS
        );
    }

    #[test]
    fn safeguards_default_to_the_command_line_defaults() {
        let parsed = Safeguards::try_parse_from(["ac"]).unwrap();
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", Safeguards::default())
        );
        assert!(parsed.max_concurrent_hashes >= 2);
        assert_eq!(parsed.key_activation_delay(), Duration::from_secs(60));
        assert!(Safeguards::try_parse_from(["ac", "--max-concurrent-hashes", "0"]).is_err());
    }

    #[test]
    fn an_activation_delay_verifiers_cannot_keep_up_with_is_refused() {
        let config = Config::new("postgres://x".into(), MasterKey::generate().unwrap());
        let with_delay = |secs| Safeguards {
            key_activation_delay_secs: secs,
            ..Safeguards::default()
        };

        assert!(check(&config, &with_delay(0)).is_ok());
        assert!(check(&config, &with_delay(10)).is_err());
        assert!(check(&config, &with_delay(21)).is_ok());
        let slow_cache = Config {
            jwks_cache_ttl_ms: 60_000,
            ..config
        };
        assert!(check(&slow_cache, &with_delay(60)).is_err());
        assert!(check(&slow_cache, &with_delay(80)).is_ok());
        assert!(Safeguards::try_parse_from(["ac", "--key-activation-delay-secs", "3601"]).is_err());
    }
}
