//! Webhooks as plain data and rules (DESIGN §13): the event types, what a valid endpoint is,
//! which addresses a delivery may reach, the secret and the Standard Webhooks signature, and
//! the retry schedule. Nothing here sends a request or reads the database.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

/// The events a webhook can subscribe to, as the body's `type` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "meeting.created")]
    MeetingCreated,
    #[serde(rename = "meeting.started")]
    MeetingStarted,
    #[serde(rename = "meeting.ended")]
    MeetingEnded,
    #[serde(rename = "participant.joined")]
    ParticipantJoined,
    #[serde(rename = "participant.left")]
    ParticipantLeft,
    #[serde(rename = "participant.removed")]
    ParticipantRemoved,
    #[serde(rename = "lobby.waiting")]
    LobbyWaiting,
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::MeetingCreated,
        EventType::MeetingStarted,
        EventType::MeetingEnded,
        EventType::ParticipantJoined,
        EventType::ParticipantLeft,
        EventType::ParticipantRemoved,
        EventType::LobbyWaiting,
        EventType::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MeetingCreated => "meeting.created",
            EventType::MeetingStarted => "meeting.started",
            EventType::MeetingEnded => "meeting.ended",
            EventType::ParticipantJoined => "participant.joined",
            EventType::ParticipantLeft => "participant.left",
            EventType::ParticipantRemoved => "participant.removed",
            EventType::LobbyWaiting => "lobby.waiting",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Webhooks one organization may have.
pub const MAX_WEBHOOKS_PER_ORG: i64 = 20;

/// Why an endpoint URL is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("url must be an absolute URL of at most 2048 characters")]
    Malformed,
    #[error("url must use https")]
    NotHttps,
    #[error("url must not carry a user name or password")]
    Credentials,
    #[error("url must not carry a fragment")]
    Fragment,
    #[error("url must name a host")]
    NoHost,
    #[error("url must not name a loopback, private, link-local, multicast or metadata address")]
    ForbiddenAddress,
}

/// Checks an endpoint URL as the management API receives it: `https` (or `http` when private
/// targets are allowed), no credentials or fragment, a host, and not an address literal a
/// delivery could never reach. Names are resolved and checked at every delivery.
pub fn parse_url(raw: &str, allow_private: bool) -> Result<reqwest::Url, UrlError> {
    if raw.len() > MAX_URL_LEN || raw.trim() != raw || raw.chars().any(char::is_control) {
        return Err(UrlError::Malformed);
    }
    let url = reqwest::Url::parse(raw).map_err(|_| UrlError::Malformed)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(UrlError::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    if url.fragment().is_some() {
        return Err(UrlError::Fragment);
    }
    let literal = match url.host() {
        None => return Err(UrlError::NoHost),
        Some(url::Host::Domain("")) => return Err(UrlError::NoHost),
        Some(url::Host::Domain(_)) => None,
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
    };
    if !allow_private && literal.is_some_and(|ip| forbidden(ip).is_some()) {
        return Err(UrlError::ForbiddenAddress);
    }
    Ok(url)
}

/// Why an address is never a webhook target (unless private targets are allowed), or `None`
/// for a public unicast address. IPv4 addresses embedded in IPv6 ones (mapped, compatible,
/// NAT64, 6to4) are judged as the IPv4 address they carry.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "unspecified",
        (127, ..) => "loopback",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "private",
        // Shared address space (carrier-grade NAT); also some clouds' metadata (100.100.100.200).
        (100, 64..=127, _) => "shared",
        // Link-local, with the metadata service of most clouds (169.254.169.254).
        (169, 254, _) => "link_local",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return forbidden_v4(embedded_v4(s[6], s[7]));
    }
    // NAT64 (64:ff9b::/96) reaches the IPv4 address it embeds.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded_v4(s[6], s[7]));
    }
    // 6to4 (2002::/16) embeds the IPv4 address of its relay's far side.
    if s[0] == 0x2002 {
        return forbidden_v4(embedded_v4(s[1], s[2]));
    }
    Some(match s[0] {
        0xfc00..=0xfdff => "private",
        0xfe80..=0xfebf => "link_local",
        0xfec0..=0xfeff => "site_local",
        0xff00..=0xffff => "multicast",
        // Teredo tunnels and the documentation prefix.
        0x2001 if s[1] == 0 => "teredo",
        0x2001 if s[1] == 0x0db8 => "documentation",
        _ => return None,
    })
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Bytes of key behind a secret GC makes.
pub const SECRET_LEN: usize = 32;
const SECRET_PREFIX: &str = "whsec_";

/// A webhook's signing secret: `whsec_` + base64 of 32 CSPRNG bytes, as the Standard Webhooks
/// libraries take it. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn generate(rng: &dyn SecureRandom) -> Result<Secret, ring::error::Unspecified> {
        let mut bytes = vec![0u8; SECRET_LEN];
        rng.fill(&mut bytes)?;
        Ok(Secret(bytes))
    }

    /// A key of 24 to 64 bytes (GC makes 32; the specification's examples use 24).
    pub fn from_bytes(bytes: &[u8]) -> Option<Secret> {
        (24..=64)
            .contains(&bytes.len())
            .then(|| Secret(bytes.to_vec()))
    }

    /// The raw key, for sealing only.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The form shown to the org once (`whsec_...`).
    pub fn reveal(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// One `v1,<base64>` signature of a delivery: HMAC-SHA256 over `id.timestamp.body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut context = hmac::Context::with_key(&key);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The `webhook-signature` header: one signature per secret, space-separated (the current one
/// first; the previous one too while a rotation overlaps).
pub fn signature_header(secrets: &[&Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long a rotated-out secret keeps signing.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// The retry schedule of a failed attempt. The wait is as long as the delivery has been failing
/// (the time since its retry window started), at least `base` and at most `cap`, times the
/// jitter: each wait about doubles the time spent so far, so the waits double (5 s, 5 s, 10 s,
/// 20 s, ... with a 5 s base), and a retry by hand, which starts a new window, starts them
/// again from `base`. Once `window` has passed since the window started, the delivery fails.
/// The statement that writes the outcome computes it on PostgreSQL's clock
/// (`db::webhooks::finish_batch`); [`retry_delay`] is the same rule.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub window: Duration,
    /// 0.8 to 1.2 ([`jitter_factor`]): a recovered endpoint is not hit by every retry at once.
    pub jitter: f64,
}

/// The jitter factor, ±20 %, of a uniform draw in `[0, 1]`.
pub fn jitter_factor(draw: f64) -> f64 {
    0.8 + 0.4 * draw.clamp(0.0, 1.0)
}

/// The wait after an attempt that failed `failing_for` after its retry window started.
pub fn retry_delay(failing_for: Duration, backoff: &Backoff) -> Duration {
    failing_for
        .max(backoff.base)
        .min(backoff.cap)
        .mul_f64(backoff.jitter)
}

/// The largest part of an answer read before it is dropped.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What became of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Delivered { status: u16 },
    /// 410: the endpoint is gone for good; the webhook is disabled.
    Gone,
    /// Any other answer, a timeout, a refused connection: try again later.
    Failed { status: Option<u16>, error: String },
    /// The target may not be reached (its address, its scheme): try again later, since the
    /// name may resolve elsewhere then, and say so on the delivery.
    Refused { reason: String },
}

impl Outcome {
    /// The `result` label of `gc_webhook_deliveries_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Gone => "gone",
            Outcome::Failed { .. } => "failed",
            Outcome::Refused { .. } => "refused",
        }
    }

    /// Whether the answer was an HTTP 410 from the endpoint.
    pub fn from_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Delivered { status },
            410 => Outcome::Gone,
            _ => Outcome::Failed {
                status: Some(status),
                error: format!("the endpoint answered {status}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_round_trips_through_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::json!(t.as_str())
            );
        }
        assert_eq!(EventType::parse("meeting.Created"), None);
        assert_eq!(EventType::parse("meeting.created "), None);
        assert_eq!(EventType::parse(""), None);
    }

    #[test]
    fn a_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification: this secret
        // (`whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`), id, timestamp and body sign to this value.
        let secret =
            Secret::from_bytes(&STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap())
                .unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(Secret::from_bytes(&[1u8; 23]).is_none());
        assert!(Secret::from_bytes(&[1u8; 65]).is_none());
    }

    #[test]
    fn a_secret_signs_id_timestamp_and_body_and_shows_itself_only_when_asked() {
        let secret = Secret::from_bytes(&[7u8; 32]).unwrap();
        let one = secret.sign("msg_1", 1_700_000_000, b"{}");
        assert!(one.starts_with("v1,"));
        assert_ne!(one, secret.sign("msg_2", 1_700_000_000, b"{}"));
        assert_ne!(one, secret.sign("msg_1", 1_700_000_001, b"{}"));
        assert_ne!(one, secret.sign("msg_1", 1_700_000_000, b"{ }"));
        assert!(secret.reveal().starts_with("whsec_"));
        assert_eq!(
            STANDARD.decode(&secret.reveal()["whsec_".len()..]).unwrap(),
            vec![7u8; 32]
        );
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        let other = Secret::from_bytes(&[8u8; 32]).unwrap();
        let header = signature_header(&[&secret, &other], "msg_1", 1_700_000_000, b"{}");
        assert_eq!(
            header,
            format!("{one} {}", other.sign("msg_1", 1_700_000_000, b"{}"))
        );
    }

    #[test]
    fn urls_must_be_https_without_credentials_fragments_or_forbidden_literals() {
        assert!(parse_url("https://hooks.example.com/convene", false).is_ok());
        assert!(parse_url("https://hooks.example.com:8443/a?b=c", false).is_ok());
        assert!(parse_url("https://93.184.216.34/hook", false).is_ok());
        for (url, error) in [
            ("http://hooks.example.com/", UrlError::NotHttps),
            ("ftp://hooks.example.com/", UrlError::NotHttps),
            ("javascript:alert(1)", UrlError::NotHttps),
            ("hooks.example.com/x", UrlError::Malformed),
            ("", UrlError::Malformed),
            (" https://hooks.example.com/", UrlError::Malformed),
            ("https://hooks.example.com/\0", UrlError::Malformed),
            ("https://hooks.example.com/\n", UrlError::Malformed),
            ("https://user:pw@hooks.example.com/", UrlError::Credentials),
            ("https://user@hooks.example.com/", UrlError::Credentials),
            ("https://hooks.example.com/#x", UrlError::Fragment),
            ("https://127.0.0.1/", UrlError::ForbiddenAddress),
            ("https://2130706433/", UrlError::ForbiddenAddress),
            ("https://0x7f.1/", UrlError::ForbiddenAddress),
            ("https://[::1]/", UrlError::ForbiddenAddress),
            (
                "https://[::ffff:169.254.169.254]/",
                UrlError::ForbiddenAddress,
            ),
            (
                "https://169.254.169.254/latest/meta-data",
                UrlError::ForbiddenAddress,
            ),
            ("https://10.0.0.1/", UrlError::ForbiddenAddress),
            ("https://[fd00:ec2::254]/", UrlError::ForbiddenAddress),
        ] {
            assert_eq!(parse_url(url, false), Err(error), "{url}");
        }
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse_url(&long, false), Err(UrlError::Malformed));
        // Development and tests: plain http and private targets.
        assert!(parse_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert_eq!(parse_url("ftp://127.0.0.1/", true), Err(UrlError::NotHttps));
    }

    #[test]
    fn every_non_public_address_is_forbidden_in_every_spelling() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "169.254.169.254",
            "192.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001::1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(forbidden(ip).is_some(), "{ip} must be forbidden");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82a::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(forbidden(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn each_wait_is_as_long_as_the_failing_so_far_within_base_and_cap_with_bounded_jitter() {
        let backoff = Backoff {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(3600),
            window: Duration::from_secs(86_400),
            jitter: jitter_factor(0.5),
        };
        let secs = Duration::from_secs;
        // Failing at 0 s, 5 s, 10 s, 20 s, ...: the waits double.
        assert_eq!(retry_delay(secs(0), &backoff), secs(5));
        assert_eq!(retry_delay(secs(5), &backoff), secs(5));
        assert_eq!(retry_delay(secs(10), &backoff), secs(10));
        assert_eq!(retry_delay(secs(20), &backoff), secs(20));
        assert_eq!(retry_delay(secs(50_000), &backoff), secs(3600));
        let low = Backoff {
            jitter: jitter_factor(0.0),
            ..backoff
        };
        let high = Backoff {
            jitter: jitter_factor(7.0),
            ..backoff
        };
        assert_eq!(retry_delay(secs(0), &low), secs(4));
        assert_eq!(retry_delay(secs(0), &high), secs(6));
        // About a day of retries: how many attempts a delivery that always fails gets.
        let mut failing = Duration::ZERO;
        let mut attempts = 1;
        while failing < backoff.window {
            failing += retry_delay(failing, &backoff);
            attempts += 1;
        }
        assert!(
            (25..=45).contains(&attempts),
            "{attempts} attempts in a day"
        );
    }

    #[test]
    fn answers_map_to_outcomes() {
        assert_eq!(
            Outcome::from_status(204),
            Outcome::Delivered { status: 204 }
        );
        assert_eq!(Outcome::from_status(410), Outcome::Gone);
        assert_eq!(Outcome::from_status(301).label(), "failed");
        assert_eq!(Outcome::from_status(500).label(), "failed");
    }
}
