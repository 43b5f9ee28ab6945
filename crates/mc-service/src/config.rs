//! MC configuration, read from the environment (or flags) at start-up; anything missing or
//! malformed stops the process with a message naming it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::shell::ShellSettings;
use secrecy::SecretString;

use crate::speaker::SpeakerSettings;

#[derive(Clone, Debug, Parser)]
#[command(
    about = "Run the meeting controller: the signaling WebSocket, its gRPC API and the ops listener"
)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["client_secret", "client_secret_file"])))]
pub struct Config {
    /// Address of the HTTP listener (WebSocket, health, metrics).
    #[arg(long, env = "MC_HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http_addr: SocketAddr,

    /// Address of the ops listener: `/health/live`, `/health/ready` and `/metrics` only, with
    /// small bounds of its own, for the kubelet's probes and Prometheus. A flood that fills the
    /// WebSocket's listener cannot reach them here.
    #[arg(long, env = "MC_OPS_ADDR", default_value = "0.0.0.0:9081")]
    pub ops_addr: SocketAddr,

    /// Address of the internal gRPC listener (`MeetingControllerService`, called by GC).
    #[arg(long, env = "MC_GRPC_ADDR", default_value = "0.0.0.0:50052")]
    pub grpc_addr: SocketAddr,

    /// Redis holding the live room state: one server (`redis://host:6379`).
    #[arg(
        long,
        env = "REDIS_URL",
        required_unless_present = "redis_cluster_urls"
    )]
    pub redis_url: Option<String>,

    /// A Redis Cluster instead: comma-separated node URLs
    /// (`redis://10.0.0.1:6379,redis://10.0.0.2:6379`). When set, `REDIS_URL` is not used.
    #[arg(long, env = "REDIS_CLUSTER_URLS", value_delimiter = ',')]
    pub redis_cluster_urls: Vec<String>,

    /// Seconds a room's keys live without a write (their safety TTL; every write renews it).
    #[arg(long, env = "ROOM_TTL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    pub room_ttl_secs: u64,

    /// Base URL of the auth controller: its JWKS verifies tokens, and it issues MC's service
    /// token.
    #[arg(long, env = "AC_URL")]
    pub ac_url: String,

    /// The `iss` every token must carry.
    #[arg(long, env = "JWT_ISSUER", default_value = "convene-ac")]
    pub jwt_issuer: String,

    /// MC's service credential at AC (scope `internal:gc`). Its client id is this controller's
    /// id in GC's registry.
    #[arg(long, env = "MC_CLIENT_ID")]
    pub client_id: String,

    /// The credential's secret; or give `MC_CLIENT_SECRET_FILE` instead (exactly one).
    #[arg(long, env = "MC_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<SecretString>,

    /// A file holding the secret (trailing newline ignored), read at start-up. In Kubernetes
    /// each MC pod reads the one named after it from a mounted Secret
    /// (`/etc/convene/mc-credentials/$(POD_NAME)`), so every replica has an identity of its own.
    #[arg(long, env = "MC_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,

    /// GC's gRPC API, where MC registers and heartbeats (`http://gc:50051`).
    #[arg(long, env = "GC_GRPC_URL")]
    pub gc_grpc_url: String,

    /// Where GC reaches this MC's gRPC API (`http://<pod address>:50052`). Default: the bound
    /// gRPC address, with an unspecified IP read as 127.0.0.1 (one machine only).
    #[arg(long, env = "MC_GRPC_ADVERTISE_URL")]
    pub grpc_advertise_url: Option<String>,

    /// Base URL of this MC's signaling WebSocket as clients reach it (`wss://mc-1.example.com`).
    /// Default: `ws://` and the bound HTTP address, read like the gRPC one.
    #[arg(long, env = "MC_PUBLIC_WS_URL")]
    pub public_ws_url: Option<String>,

    /// Rooms this MC accepts at most (GC assigns no more).
    #[arg(long, env = "MC_CAPACITY", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub capacity: u32,

    /// Connection bounds, timeouts and stop timings of the listeners.
    #[command(flatten)]
    pub shell: ShellSettings,

    /// The signaling WebSocket's bounds and the active-speaker detector.
    #[command(flatten)]
    pub signaling: SignalingArgs,
}

/// The signaling settings as the environment gives them.
impl Config {
    /// The client secret, read from `MC_CLIENT_SECRET_FILE` when that is how it was given.
    pub fn client_secret(&self) -> anyhow::Result<SecretString> {
        if let Some(secret) = &self.client_secret {
            return Ok(secret.clone());
        }
        let Some(path) = &self.client_secret_file else {
            anyhow::bail!("MC_CLIENT_SECRET or MC_CLIENT_SECRET_FILE is required");
        };
        // At most a little more than any secret: a wrong path (a device, a log) must not be
        // read whole.
        const MAX_SECRET_FILE_BYTES: u64 = 4096;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| {
                use std::io::Read;
                file.take(MAX_SECRET_FILE_BYTES + 1)
                    .read_to_string(&mut text)
            })
            .with_context(|| format!("cannot read MC_CLIENT_SECRET_FILE {}", path.display()))?;
        anyhow::ensure!(
            text.len() as u64 <= MAX_SECRET_FILE_BYTES,
            "MC_CLIENT_SECRET_FILE {} is over {MAX_SECRET_FILE_BYTES} bytes: not a secret",
            path.display()
        );
        let secret = text.trim_end_matches(['\n', '\r']);
        anyhow::ensure!(
            !secret.is_empty(),
            "MC_CLIENT_SECRET_FILE {} is empty",
            path.display()
        );
        Ok(SecretString::from(secret.to_owned()))
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct SignalingArgs {
    /// How long a dropped signaling connection keeps its seat: `30s`, `500ms`, `2m` (a bare
    /// number is seconds).
    #[arg(long, env = "RECONNECT_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub reconnect_grace: Duration,

    /// A level at or above this (dBFS, -127 to 0) counts as speech.
    #[arg(long, env = "ACTIVE_SPEAKER_THRESHOLD_DB", default_value_t = -40.0,
          allow_negative_numbers = true, value_parser = parse_threshold)]
    pub active_speaker_threshold_db: f64,

    /// Milliseconds of continuous speech that make a participant the active speaker.
    #[arg(long, env = "ACTIVE_SPEAKER_MIN_DURATION_MS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub active_speaker_min_duration_ms: u64,

    /// Milliseconds without a sample that break a run of speech.
    #[arg(long, env = "ACTIVE_SPEAKER_SILENCE_GAP_MS", default_value_t = 150,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub active_speaker_silence_gap_ms: u64,

    /// Signaling sockets open at once at most; more upgrades are answered 503.
    #[arg(long, env = "WS_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ws_max_connections: u32,

    /// Milliseconds a new socket has to authenticate (4401 after).
    #[arg(long, env = "WS_AUTH_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub ws_auth_timeout_ms: u64,

    /// Seconds a socket may go without sending a frame.
    #[arg(long, env = "WS_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub ws_idle_timeout_secs: u64,

    /// Messages a client may send per second on average (4429 beyond), and in a burst.
    #[arg(long, env = "WS_MAX_MESSAGES_PER_SEC", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub ws_max_messages_per_sec: u32,

    #[arg(long, env = "WS_MESSAGE_BURST", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub ws_message_burst: u32,

    /// Messages queued for one socket at most; a client that lets it fill is dropped (1008).
    #[arg(long, env = "WS_OUTBOUND_QUEUE", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub ws_outbound_queue: u32,

    /// The kernel send buffer of each connection of the HTTP listener (the sockets' bytes on
    /// their way to a client), so a client that does not read is found out after this much.
    #[arg(long, env = "WS_SEND_BUFFER_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(4_096..=16 * 1024 * 1024))]
    pub ws_send_buffer_bytes: u32,
}

impl Default for SignalingArgs {
    fn default() -> Self {
        Self {
            reconnect_grace: Duration::from_secs(30),
            active_speaker_threshold_db: -40.0,
            active_speaker_min_duration_ms: 300,
            active_speaker_silence_gap_ms: 150,
            ws_max_connections: 10_000,
            ws_auth_timeout_ms: 5_000,
            ws_idle_timeout_secs: 60,
            ws_max_messages_per_sec: 100,
            ws_message_burst: 200,
            ws_outbound_queue: 256,
            ws_send_buffer_bytes: 64 * 1024,
        }
    }
}

impl SignalingArgs {
    pub fn settings(&self) -> SignalingSettings {
        SignalingSettings {
            max_connections: self.ws_max_connections as usize,
            auth_timeout: Duration::from_millis(self.ws_auth_timeout_ms),
            idle_timeout: Duration::from_secs(self.ws_idle_timeout_secs),
            reconnect_grace: self.reconnect_grace,
            messages_per_second: self.ws_max_messages_per_sec,
            message_burst: self.ws_message_burst,
            outbound_queue: self.ws_outbound_queue as usize,
            speaker: SpeakerSettings {
                threshold_dbfs: self.active_speaker_threshold_db,
                min_duration: Duration::from_millis(self.active_speaker_min_duration_ms),
                silence_gap: Duration::from_millis(self.active_speaker_silence_gap_ms),
            },
        }
    }
}

/// `30s`, `500ms`, `2m`, or a bare number of seconds; at most a day.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 30s or 500ms"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err(format!("{raw:?}: the unit must be ms, s or m")),
    };
    if duration > Duration::from_secs(86_400) {
        return Err(format!("{raw:?} is longer than a day"));
    }
    Ok(duration)
}

fn parse_threshold(raw: &str) -> Result<f64, String> {
    let value: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number"))?;
    if !(crate::speaker::MIN_LEVEL_DBFS..=crate::speaker::MAX_LEVEL_DBFS).contains(&value) {
        return Err(format!("{raw:?} is outside -127..=0 dBFS"));
    }
    Ok(value)
}

/// `addr` as a URL of `scheme`, an unspecified IP (0.0.0.0, ::) read as loopback.
pub fn local_url(scheme: &str, addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("{scheme}://{ip}:{}", addr.port())
}

/// The signaling bounds and timings, as [`SignalingArgs::settings`] makes them from the
/// environment.
#[derive(Clone, Debug)]
pub struct SignalingSettings {
    /// Sockets open at once at most.
    pub max_connections: usize,
    /// Time from the upgrade to a valid `auth`.
    pub auth_timeout: Duration,
    /// Time a socket may go without sending a frame (`audio_level` flows every 20–100 ms and
    /// `ping` exists for quiet clients).
    pub idle_timeout: Duration,
    /// How long a dropped connection keeps its seat.
    pub reconnect_grace: Duration,
    /// Messages a client may send per second on average, and at once.
    pub messages_per_second: u32,
    pub message_burst: u32,
    /// Messages queued for one socket at most before it counts as too slow.
    pub outbound_queue: usize,
    pub speaker: SpeakerSettings,
}

impl Default for SignalingSettings {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            auth_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            reconnect_grace: Duration::from_secs(30),
            messages_per_second: 100,
            message_burst: 200,
            outbound_queue: 256,
            speaker: SpeakerSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_advertise_loopback() {
        assert_eq!(
            local_url("ws", "0.0.0.0:8081".parse().unwrap()),
            "ws://127.0.0.1:8081"
        );
        assert_eq!(
            local_url("http", "10.1.2.3:50052".parse().unwrap()),
            "http://10.1.2.3:50052"
        );
        assert_eq!(
            local_url("http", "[::1]:5".parse().unwrap()),
            "http://[::1]:5"
        );
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in [
            "",
            "s",
            "-1s",
            "1.5s",
            "3h",
            "1 s",
            "9999999999999999999999s",
            "2d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("86401s").is_err());
    }

    /// The required flags, without Redis.
    const REQUIRED: [&str; 9] = [
        "mc",
        "--ac-url",
        "http://ac",
        "--client-id",
        "mc-1",
        "--client-secret",
        "s",
        "--gc-grpc-url",
        "http://gc:50051",
    ];

    #[test]
    fn the_signaling_defaults_are_the_contracts() {
        let base = [&REQUIRED[..], &["--redis-url", "redis://r:6379"]].concat();
        let parsed = Config::try_parse_from(&base).unwrap();
        let settings = parsed.signaling.settings();
        assert_eq!(settings.reconnect_grace, Duration::from_secs(30));
        assert_eq!(settings.speaker, SpeakerSettings::default());
        assert_eq!(settings.auth_timeout, Duration::from_secs(5));
        assert_eq!(
            format!("{:?}", parsed.signaling),
            format!("{:?}", SignalingArgs::default())
        );
        let custom = [
            &base[..],
            &[
                "--active-speaker-threshold-db",
                "-55.5",
                "--reconnect-grace",
                "250ms",
            ],
        ]
        .concat();
        let parsed = Config::try_parse_from(custom).unwrap();
        assert_eq!(parsed.signaling.active_speaker_threshold_db, -55.5);
        assert_eq!(parsed.signaling.reconnect_grace, Duration::from_millis(250));
        let loud = [&base[..], &["--active-speaker-threshold-db", "3"]].concat();
        assert!(Config::try_parse_from(loud).is_err());
    }

    #[test]
    fn a_cluster_or_one_redis_is_read() {
        let base = REQUIRED;
        let single = [&base[..], &["--redis-url", "redis://r:6379"]].concat();
        assert!(Config::try_parse_from(single).is_ok());
        let cluster = [
            &base[..],
            &["--redis-cluster-urls", "redis://a:1,redis://b:2"],
        ]
        .concat();
        let parsed = Config::try_parse_from(cluster).unwrap();
        assert_eq!(parsed.redis_cluster_urls.len(), 2);
        assert!(!format!("{parsed:?}").contains("client_secret: \"s\""));
    }

    #[test]
    fn the_secret_comes_from_the_environment_or_a_file_never_both() {
        use secrecy::ExposeSecret;
        let without_secret: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|arg| *arg != "--client-secret" && *arg != "s")
            .chain(["--redis-url", "redis://r:6379"])
            .collect();
        // Neither: refused at parse time.
        assert!(Config::try_parse_from(&without_secret).is_err());

        let dir = std::env::temp_dir().join(format!("mc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mc-service-0");
        std::fs::write(&file, "from-the-file\n").unwrap();
        let path = file.to_str().unwrap();
        let from_file = [&without_secret[..], &["--client-secret-file", path]].concat();
        let parsed = Config::try_parse_from(from_file).unwrap();
        assert_eq!(
            parsed.client_secret().unwrap().expose_secret(),
            "from-the-file"
        );

        // Both: refused, so nobody wonders which one is used.
        let both = [
            &REQUIRED[..],
            &[
                "--redis-url",
                "redis://r:6379",
                "--client-secret-file",
                path,
            ],
        ]
        .concat();
        assert!(Config::try_parse_from(both).is_err());

        // A file far longer than a secret (a wrong path) is refused without reading it all.
        std::fs::write(&file, vec![b'x'; 10_000]).unwrap();
        let error = parsed.client_secret().unwrap_err().to_string();
        assert!(error.contains("not a secret"), "{error}");
        let endless = Config::try_parse_from(
            [&without_secret[..], &["--client-secret-file", "/dev/zero"]].concat(),
        )
        .unwrap();
        let error = format!("{:#}", endless.client_secret().unwrap_err());
        assert!(
            error.contains("not a secret") || error.contains("cannot read"),
            "{error}"
        );

        // An empty or missing file stops start-up with the path in the message.
        std::fs::write(&file, "\n").unwrap();
        let error = parsed.client_secret().unwrap_err().to_string();
        assert!(
            error.contains("is empty") && error.contains(path),
            "{error}"
        );
        std::fs::remove_file(&file).unwrap();
        let error = format!("{:#}", parsed.client_secret().unwrap_err());
        assert!(
            error.contains("cannot read MC_CLIENT_SECRET_FILE"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
