//! MC configuration, read from the environment (or flags) at start-up; anything missing or
//! malformed stops the process with a message naming it.

use std::net::SocketAddr;

use clap::Parser;
use common::shell::ShellSettings;
use secrecy::SecretString;

#[derive(Clone, Debug, Parser)]
#[command(name = "mc-service", about = "Convene meeting controller")]
pub struct Config {
    /// Address of the HTTP listener (WebSocket, health, metrics).
    #[arg(long, env = "MC_HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http_addr: SocketAddr,

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

    #[arg(long, env = "MC_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: SecretString,

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
    fn a_cluster_or_one_redis_is_read() {
        let base = [
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
}
