//! OAuth2 client credentials: how one Convene service obtains the token it presents to another.
//!
//! [`ServiceTokenClient::token`] returns a cached token while it has comfortably long to live
//! and fetches a new one before it expires: once less than a fifth of its lifetime (and at
//! least 60 s) is left. Concurrent callers share the one fetch in flight.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Why a service token could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum ServiceTokenError {
    #[error("token request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("AC refused the credentials with status {0}")]
    Refused(u16),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
}

/// A client-credentials client with a token cache.
pub struct ServiceTokenClient {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
    cached: Mutex<Option<CachedToken>>,
}

impl ServiceTokenClient {
    /// `ac_base_url` is AC's base URL; `scope` narrows the token when given.
    pub fn new(
        ac_base_url: &str,
        client_id: impl Into<String>,
        client_secret: SecretString,
        scope: Option<String>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: crate::http_client(Duration::from_secs(10))?,
            token_url: format!(
                "{}/api/v1/auth/service/token",
                ac_base_url.trim_end_matches('/')
            ),
            client_id: client_id.into(),
            client_secret,
            scope,
            cached: Mutex::new(None),
        })
    }

    /// A valid token, fetched or refreshed when needed.
    pub async fn token(&self) -> Result<SecretString, ServiceTokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref()
            && Instant::now() < current.refresh_at
        {
            return Ok(current.token.clone());
        }
        let fetched_at = Instant::now();
        let response = self.request().await?;
        let lifetime = Duration::from_secs(response.expires_in);
        let margin = (lifetime / 5).max(Duration::from_secs(60)).min(lifetime);
        let token = SecretString::from(response.access_token);
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: fetched_at + (lifetime - margin),
        });
        Ok(token)
    }

    /// Drops the cached token, e.g. after the peer answered 401 to it.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn request(&self) -> Result<TokenResponse, ServiceTokenError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.as_str()));
        }
        let response = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&form)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(ServiceTokenError::Refused(status.as_u16()));
        }
        Ok(response.json().await?)
    }
}

/// What a service that both checks tokens and calls its peers needs from AC: the verifier of
/// AC's keys, and a client-credentials client for its own service tokens.
pub struct AcClients {
    pub verifier: crate::jwks::JwksVerifier,
    pub tokens: std::sync::Arc<ServiceTokenClient>,
}

impl AcClients {
    /// Both clients of AC at `ac_base_url`, for tokens issued by `issuer`, authenticating as
    /// `client_id`.
    pub fn new(
        ac_base_url: &str,
        issuer: &str,
        client_id: &str,
        client_secret: SecretString,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            verifier: crate::jwks::JwksVerifier::new(crate::jwks::VerifierConfig::new(
                ac_base_url,
                issuer,
            ))?,
            tokens: std::sync::Arc::new(ServiceTokenClient::new(
                ac_base_url,
                client_id,
                client_secret,
                None,
            )?),
        })
    }
}
