//! Who is calling, as far as the network tells: the client address and user agent recorded in
//! the audit log.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;

/// Longest user agent stored, in characters (the audit column's limit).
pub const MAX_USER_AGENT_CHARS: usize = 512;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// Where the request came from, as the record of its changes says.
    pub fn origin(&self) -> crate::domain::events::Origin<'_> {
        crate::domain::events::Origin {
            ip: self.ip,
            user_agent: self.user_agent.as_deref(),
        }
    }
}

/// `GC_TRUST_FORWARDED_FOR`: whether the client address is the last `X-Forwarded-For` entry
/// (behind a proxy that sets it) or the peer's.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardedFor {
    pub trusted: bool,
}

impl<S> FromRequestParts<S> for ClientInfo
where
    ForwardedFor: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientInfo {
            ip: common::http::client_ip(
                &parts.headers,
                peer,
                ForwardedFor::from_ref(state).trusted,
            ),
            user_agent: user_agent(&parts.headers),
        })
    }
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
