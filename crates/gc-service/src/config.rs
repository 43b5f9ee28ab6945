//! GC's configuration, read from the environment (or flags) once at start-up.
//!
//! Every value is checked before the service binds a port, so a typo fails the deployment, not
//! a request hours later. Secrets are `SecretString`s: they never show in `Debug` or logs.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use common::shell::ShellSettings;
use secrecy::SecretString;

/// Everything `gc-service serve` needs. Fields are public so tests can build one directly.
#[derive(Clone, Debug, Parser)]
#[command(about = "Run the global controller's HTTP API")]
pub struct Config {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,

    /// Largest number of PostgreSQL connections this replica opens.
    #[arg(long, env = "GC_DB_MAX_CONNECTIONS", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    /// Address the public HTTP API listens on.
    #[arg(long, env = "GC_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address of the ops listener: `/health/live`, `/health/ready` and `/metrics` only, with
    /// small bounds of its own, for the kubelet's probes and Prometheus. A flood that fills the
    /// public HTTP listener cannot reach them here.
    #[arg(long, env = "GC_OPS_ADDR", default_value = "0.0.0.0:9080")]
    pub ops_addr: SocketAddr,

    /// Address of the internal gRPC API (`GlobalControllerService`), called by meeting
    /// controllers.
    #[arg(long, env = "GC_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,

    /// GC's service credential at AC: it obtains meeting tokens and calls meeting controllers
    /// (scopes `internal:meeting-token` and `internal:mc`).
    #[arg(long, env = "GC_CLIENT_ID")]
    pub client_id: String,

    #[arg(long, env = "GC_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: SecretString,

    /// Base URL of AC; its JWKS is read from `<AC_URL>/.well-known/jwks.json`.
    #[arg(long, env = "AC_URL", value_parser = parse_base_url)]
    pub ac_url: String,

    /// The `iss` every accepted token must carry.
    #[arg(long, env = "JWT_ISSUER", default_value = "convene-ac")]
    pub jwt_issuer: String,

    /// Public base URL of the product, used for `join_url` (`<base>/m/<code>`).
    #[arg(long, env = "GC_PUBLIC_BASE_URL", value_parser = parse_base_url)]
    pub public_base_url: String,

    /// Take the audited client address from the last `X-Forwarded-For` entry. Set it only
    /// behind a proxy that appends that header, or clients can pick the address recorded.
    #[arg(long, env = "GC_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// Connection bounds, timeouts and stop timings of the listeners.
    #[command(flatten)]
    pub shell: ShellSettings,

    /// Meeting controllers, timeouts and retention.
    #[command(flatten)]
    pub lifecycle: LifecycleSettings,

    /// The web client (the meeting page at `join_url`).
    #[command(flatten)]
    pub web: WebSettings,

    /// Webhooks: the key of their secrets, and how deliveries are sent.
    #[command(flatten)]
    pub webhooks: WebhookSettings,
}

/// How GC runs the meeting lifecycle.
#[derive(Clone, Debug, clap::Args)]
pub struct LifecycleSettings {
    /// How often meeting controllers heartbeat (told to them when they register).
    #[arg(long, env = "MC_HEARTBEAT_INTERVAL_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=300))]
    pub heartbeat_interval_secs: u32,

    /// A controller whose last heartbeat is older than this is unhealthy: it gets no new
    /// meetings, and its meetings move to another controller on their next join.
    #[arg(long, env = "MC_HEARTBEAT_TIMEOUT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub heartbeat_timeout_secs: u32,

    /// Deadline of one call to a meeting controller, in milliseconds.
    #[arg(long, env = "MC_CALL_TIMEOUT_MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub mc_call_timeout_ms: u64,

    /// A meeting with nobody present for this many seconds ends by itself.
    #[arg(long, env = "EMPTY_MEETING_TIMEOUT", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=7 * 86_400))]
    pub empty_meeting_timeout_secs: u64,

    /// A `scheduled` meeting nobody joined expires this many seconds after its scheduled
    /// start time (or its creation, when it has none).
    #[arg(long, env = "SCHEDULED_MEETING_TTL", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(60..=366 * 86_400))]
    pub scheduled_meeting_ttl_secs: u64,

    /// Meetings ended more than this many days ago are deleted with their participants
    /// (their audit rows stay).
    #[arg(long, env = "MEETING_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub meeting_retention_days: u32,

    /// How often each replica looks for meetings to end or delete.
    #[arg(long, env = "GC_HOUSEKEEPING_INTERVAL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub housekeeping_interval_secs: u64,

    /// Joins and leaves one user may make of one meeting at once, on one replica; beyond them
    /// (and the refill below) a join or leave is answered 429 `RATE_LIMITED`.
    #[arg(long, env = "GC_JOIN_LEAVE_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub join_leave_burst: u32,

    /// Milliseconds after which one more join or leave of the same user and meeting is allowed.
    #[arg(long, env = "GC_JOIN_LEAVE_INTERVAL_MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub join_leave_interval_ms: u64,

    /// Guests (people without an account, DESIGN §12) one lobby may hold; one more is answered
    /// 409 `LOBBY_FULL`. 0 refuses every guest.
    #[arg(long, env = "MAX_GUESTS_WAITING", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub max_guests_waiting: u32,

    /// `guest-join` requests one client address (an IPv6 /64) may make at once, on one
    /// replica; beyond them (and the refill below) it is answered 429 `RATE_LIMITED`.
    #[arg(long, env = "GC_GUEST_JOIN_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub guest_join_burst: u32,

    /// Milliseconds after which one more `guest-join` of the same address is allowed.
    #[arg(long, env = "GC_GUEST_JOIN_INTERVAL_MS", default_value_t = 6000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub guest_join_interval_ms: u64,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval_secs: 5,
            heartbeat_timeout_secs: 15,
            mc_call_timeout_ms: 3000,
            empty_meeting_timeout_secs: 600,
            scheduled_meeting_ttl_secs: 86_400,
            meeting_retention_days: 90,
            housekeeping_interval_secs: 30,
            join_leave_burst: 20,
            join_leave_interval_ms: 3000,
            max_guests_waiting: 50,
            guest_join_burst: 10,
            guest_join_interval_ms: 6000,
        }
    }
}

/// Accepts an absolute `http`/`https` URL without query or fragment, and drops a trailing
/// slash so paths can be appended with `format!("{base}/...")`.
pub fn parse_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let uri: axum::http::Uri = trimmed
        .parse()
        .map_err(|_| format!("{raw:?} is not a URL"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none() {
        return Err(format!("{raw:?} must be an absolute http(s) URL"));
    }
    if trimmed.contains(['?', '#']) {
        return Err(format!("{raw:?} must not have a query or fragment"));
    }
    Ok(trimmed.to_owned())
}

/// How GC serves the web client.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct WebSettings {
    /// Directory of the built web client (`web/dist`: `index.html` and `assets/`). Unset: GC
    /// serves no pages, only its API.
    #[arg(long, env = "GC_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// AC's base URL as browsers reach it, for sign-in (default: `AC_URL`). AC must allow this
    /// page's origin (`AC_CORS_ALLOWED_ORIGINS`).
    #[arg(long, env = "GC_WEB_AC_URL")]
    pub web_ac_url: Option<String>,

    /// Further sources the pages may connect to (comma-separated CSP sources, such as
    /// `wss://*.mc.example.com` when controllers come and go behind wildcard names).
    #[arg(long, env = "GC_WEB_CONNECT_SRC", value_delimiter = ',')]
    pub connect_src: Vec<String>,
}

/// Webhooks (DESIGN §13): the key that seals their secrets, and how deliveries are sent.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookSettings {
    /// Base64 of 32 random bytes (`openssl rand -base64 32`): seals the webhooks' signing
    /// secrets in the database. Keep it: without the key they were sealed with, no delivery
    /// can be signed. Unset, the webhook API answers 503 and nothing is delivered.
    #[arg(long, env = "GC_WEBHOOK_KEY", hide_env_values = true, value_parser = WebhookKey::parse)]
    pub key: Option<WebhookKey>,

    /// Lets webhooks target `http` URLs and loopback, private and link-local addresses.
    /// Development and tests only: in production it lets an org's webhook reach inside the
    /// cluster.
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE_TARGETS", default_value_t = false)]
    pub allow_private_targets: bool,

    /// Delivered (and failed) deliveries are deleted this many days after they ended.
    #[arg(long, env = "WEBHOOK_RETENTION_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub retention_days: u32,

    /// Requests in flight at once on this replica, all endpoints together.
    #[arg(long, env = "WEBHOOK_MAX_IN_FLIGHT", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_in_flight: u64,

    /// Requests in flight at once to one webhook, on this replica.
    #[arg(long, env = "WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub max_in_flight_per_endpoint: u64,

    /// A delivery attempt gives up after this many seconds (connection, request and answer).
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout_secs: u64,

    /// The shortest wait after a failed attempt, in milliseconds. Each wait is as long as the
    /// delivery has been failing (at least this, at most WEBHOOK_RETRY_MAX_SECS, ±20 %), so the
    /// waits double; a retry by hand starts them again from this.
    #[arg(long, env = "WEBHOOK_RETRY_BASE_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub retry_base_ms: u64,

    /// The longest wait between two attempts, in seconds.
    #[arg(long, env = "WEBHOOK_RETRY_MAX_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retry_max_secs: u64,

    /// A delivery still failing this many seconds after its event (or after a retry by hand)
    /// is `failed`: about a day.
    #[arg(long, env = "WEBHOOK_RETRY_WINDOW_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=7 * 86_400))]
    pub retry_window_secs: u64,

    /// How often an idle delivery worker looks for due deliveries, in milliseconds.
    #[arg(long, env = "WEBHOOK_POLL_INTERVAL_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_interval_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            key: None,
            allow_private_targets: false,
            retention_days: 7,
            max_in_flight: 64,
            max_in_flight_per_endpoint: 8,
            timeout_secs: 10,
            retry_base_ms: 5000,
            retry_max_secs: 3600,
            retry_window_secs: 86_400,
            poll_interval_ms: 250,
        }
    }
}

/// `GC_WEBHOOK_KEY`: the AES-256-GCM key sealing webhook secrets at rest.
#[derive(Clone)]
pub struct WebhookKey(secrecy::SecretSlice<u8>);

impl WebhookKey {
    pub fn parse(encoded: &str) -> Result<WebhookKey, String> {
        common::envelope::parse_key("GC_WEBHOOK_KEY", encoded).map(WebhookKey::from_bytes_unchecked)
    }

    /// A key of exactly 32 bytes (tests make their own).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<WebhookKey, String> {
        if bytes.len() != common::envelope::KEY_LEN {
            return Err(format!(
                "GC_WEBHOOK_KEY must be {} bytes",
                common::envelope::KEY_LEN
            ));
        }
        Ok(WebhookKey::from_bytes_unchecked(bytes))
    }

    fn from_bytes_unchecked(bytes: Vec<u8>) -> WebhookKey {
        WebhookKey(secrecy::SecretSlice::from(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_lose_their_trailing_slash() {
        assert_eq!(
            parse_base_url("https://meet.example.com/").unwrap(),
            "https://meet.example.com"
        );
        assert_eq!(
            parse_base_url("http://127.0.0.1:8082").unwrap(),
            "http://127.0.0.1:8082"
        );
        assert_eq!(
            parse_base_url("https://example.com/convene/").unwrap(),
            "https://example.com/convene"
        );
    }

    #[test]
    fn relative_or_non_http_base_urls_are_refused() {
        for bad in [
            "",
            "meet.example.com",
            "/m",
            "ftp://example.com",
            "https://x/?a=1",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_reads_the_environment_names_of_the_design() {
        let config = Config::try_parse_from([
            "gc-service",
            "--database-url",
            "postgres://gc@db/convene",
            "--ac-url",
            "http://ac:8082/",
            "--public-base-url",
            "https://meet.example.com",
            "--client-id",
            "convene-gc",
            "--client-secret",
            "s3cret",
        ])
        .unwrap();
        assert_eq!(config.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.ac_url, "http://ac:8082");
        assert_eq!(config.jwt_issuer, "convene-ac");
        assert_eq!(config.db_max_connections, 32);
        assert!(!config.trust_forwarded_for);
        assert_eq!(config.shell.request_timeout_secs, 30);
        assert_eq!(config.grpc_addr.to_string(), "0.0.0.0:50051");
        assert_eq!(config.lifecycle.empty_meeting_timeout_secs, 600);
        assert_eq!(config.lifecycle.meeting_retention_days, 90);
        assert_eq!(config.lifecycle.max_guests_waiting, 50);
        assert_eq!(config.lifecycle.guest_join_burst, 10);
        let debug = format!("{config:?}");
        assert!(!debug.contains("gc@db") && !debug.contains("s3cret"));
    }
}
