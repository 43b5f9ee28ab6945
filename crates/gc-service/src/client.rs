//! Who is calling, as far as the network tells: the client address and user agent recorded in
//! the audit log.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;

use crate::startup::AppState;

/// Longest user agent stored, in characters (the audit column's limit).
pub const MAX_USER_AGENT_CHARS: usize = 512;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientInfo {
            ip: client_ip(&parts.headers, peer, state.trust_forwarded_for),
            user_agent: user_agent(&parts.headers),
        })
    }
}

/// The socket peer, or — only when GC is told it sits behind a proxy that appends
/// `X-Forwarded-For` — the last address of that header: the one the proxy itself saw. Earlier
/// entries are whatever the client chose to send and are never trusted.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if trust_forwarded_for && let Some(forwarded) = last_forwarded_for(headers) {
        return Some(forwarded);
    }
    peer
}

fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last_header = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last_entry = last_header.to_str().ok()?.rsplit(',').next()?.trim();
    last_entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| last_entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// The `User-Agent`, with invalid UTF-8 replaced and cut to [`MAX_USER_AGENT_CHARS`].
pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    let raw = String::from_utf8_lossy(headers.get(USER_AGENT)?.as_bytes());
    let agent: String = raw.chars().take(MAX_USER_AGENT_CHARS).collect();
    (!agent.is_empty()).then_some(agent)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn peer() -> Option<IpAddr> {
        Some("10.0.0.7".parse().unwrap())
    }

    #[test]
    fn the_socket_peer_is_used_unless_forwarded_for_is_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert_eq!(client_ip(&headers, peer(), false), peer());
        assert_eq!(
            client_ip(&headers, peer(), true),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn only_the_last_forwarded_for_entry_is_trusted() {
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6,  2001:db8::1 "),
        );
        assert_eq!(
            client_ip(&headers, peer(), true),
            Some("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn an_unparsable_forwarded_for_falls_back_to_the_peer() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("unknown"));
        assert_eq!(client_ip(&headers, peer(), true), peer());
        let mut with_port = HeaderMap::new();
        with_port.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.4:5555"),
        );
        assert_eq!(
            client_ip(&with_port, peer(), true),
            Some("198.51.100.4".parse().unwrap())
        );
    }

    #[test]
    fn user_agents_are_cut_to_512_characters() {
        let mut headers = HeaderMap::new();
        assert_eq!(user_agent(&headers), None);
        let long = "x".repeat(2000);
        headers.insert(USER_AGENT, HeaderValue::from_str(&long).unwrap());
        assert_eq!(user_agent(&headers).unwrap().chars().count(), 512);
        headers.insert(USER_AGENT, HeaderValue::from_static("curl/8.5"));
        assert_eq!(user_agent(&headers).as_deref(), Some("curl/8.5"));
    }
}
