//! GC's configuration, read from the environment (or flags) once at start-up.
//!
//! Every value is checked before the service binds a port, so a typo fails the deployment, not
//! a request hours later. Secrets are `SecretString`s: they never show in `Debug` or logs.

use std::net::SocketAddr;

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
        ])
        .unwrap();
        assert_eq!(config.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.ac_url, "http://ac:8082");
        assert_eq!(config.jwt_issuer, "convene-ac");
        assert_eq!(config.db_max_connections, 32);
        assert!(!config.trust_forwarded_for);
        assert_eq!(config.shell.request_timeout_secs, 30);
        assert!(!format!("{config:?}").contains("gc@db"));
    }
}
