//! OAuth2 client credentials: how one Convene service obtains the token it presents to another.
//!
//! [`ServiceTokenClient::token`] returns a cached token while it has comfortably long to live
//! and fetches a new one before it expires: once less than a fifth of its lifetime (and at
//! least 60 s) is left. Concurrent callers share the one fetch in flight.
//!
//! A peer may refuse a token that has long to live: AC withdrew the key that signed it (a
//! compromised key), so every peer that has fetched AC's keys since refuses it. Waiting for the
//! next call to fetch a new one would fail the call in hand, so [`ServiceTokenClient::call`]
//! sends a refused call once more with a new token, and only once: a second refusal is the
//! caller's error. Every client of a peer goes through it (GC's client of AC's meeting-token
//! routes, and `grpc::client::ServiceTokenLayer` for every gRPC call), so the rule lives here.

use std::future::Future;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

/// After a refusal, a new token is fetched at most this often. A peer that refuses every token
/// (one that trusts another issuer) would otherwise cost AC a client-secret check, an Argon2
/// hash, per call.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

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

#[derive(Default)]
struct TokenState {
    cached: Option<CachedToken>,
    /// When a refusal last made us fetch a new token.
    refetched_after_refusal: Option<Instant>,
}

/// A client-credentials client with a token cache.
pub struct ServiceTokenClient {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
    min_refetch_interval: Duration,
    state: Mutex<TokenState>,
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
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            state: Mutex::new(TokenState::default()),
        })
    }

    /// How often, at most, a refused token is replaced by a new one
    /// ([`DEFAULT_MIN_REFETCH_INTERVAL`]).
    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// A valid token, fetched or refreshed when needed.
    pub async fn token(&self) -> Result<SecretString, ServiceTokenError> {
        let mut state = self.state.lock().await;
        if let Some(current) = state.cached.as_ref()
            && Instant::now() < current.refresh_at
        {
            return Ok(current.token.clone());
        }
        self.fetch(&mut state).await
    }

    /// Runs `send` with the current token. When `refused` says the peer refused that token,
    /// runs `send` once more with a new one (see [`ServiceTokenClient::replace_refused`]) and
    /// returns what that second attempt gave, refused or not. Fails only when no token can be
    /// had for the first attempt.
    pub async fn call<T, F, Fut>(
        &self,
        mut send: F,
        refused: impl Fn(&T) -> bool,
    ) -> Result<T, ServiceTokenError>
    where
        F: FnMut(SecretString) -> Fut,
        Fut: Future<Output = T>,
    {
        let token = self.token().await?;
        let outcome = send(token.clone()).await;
        if !refused(&outcome) {
            return Ok(outcome);
        }
        match self.replace_refused(&token).await {
            Ok(Some(fresh)) => Ok(send(fresh).await),
            Ok(None) => Ok(outcome),
            Err(error) => {
                tracing::warn!(%error, "no new service token after a refusal");
                Ok(outcome)
            }
        }
    }

    /// A token to try instead of `refused`, which a peer has just refused, or `None` when no
    /// other is worth trying. Another caller may have replaced it already: that token is
    /// used as it is. Otherwise a new one is fetched, unless a refusal made us fetch one less
    /// than `min_refetch_interval` ago (then the peer refuses even fresh tokens, and asking
    /// AC for more would only load it).
    pub async fn replace_refused(
        &self,
        refused: &SecretString,
    ) -> Result<Option<SecretString>, ServiceTokenError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let cached = state.cached.as_ref();
        let still_cached =
            cached.is_some_and(|current| current.token.expose_secret() == refused.expose_secret());
        if let Some(current) = cached
            && !still_cached
            && now < current.refresh_at
        {
            return Ok(Some(current.token.clone()));
        }
        if still_cached {
            if state
                .refetched_after_refusal
                .is_some_and(|at| now.duration_since(at) < self.min_refetch_interval)
            {
                tracing::warn!("the peer refused a service token fetched after a refusal");
                return Ok(None);
            }
            tracing::warn!("the peer refused the service token; fetching a new one");
            state.refetched_after_refusal = Some(now);
        }
        let fetched = self.fetch(&mut state).await;
        if fetched.is_err() && still_cached {
            // The cached token is known to be refused: the next call waits for AC instead of
            // sending it again.
            state.cached = None;
        }
        fetched.map(Some)
    }

    /// Fetches a token and caches it, with the state's lock held so that concurrent callers
    /// wait for this fetch instead of starting their own.
    async fn fetch(&self, state: &mut TokenState) -> Result<SecretString, ServiceTokenError> {
        let fetched_at = Instant::now();
        let response = self.request().await?;
        let lifetime = Duration::from_secs(response.expires_in);
        let margin = (lifetime / 5).max(Duration::from_secs(60)).min(lifetime);
        let token = SecretString::from(response.access_token);
        state.cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: fetched_at + (lifetime - margin),
        });
        Ok(token)
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
    /// `client_id`; the verifier refreshes AC's keys in the background on `tasks` (the
    /// service's `ShellHandle::tracker`).
    pub fn new(
        ac_base_url: &str,
        issuer: &str,
        client_id: &str,
        client_secret: SecretString,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            verifier: crate::jwks::JwksVerifier::new(crate::jwks::VerifierConfig {
                tasks: tasks.clone(),
                ..crate::jwks::VerifierConfig::new(ac_base_url, issuer)
            })?,
            tokens: std::sync::Arc::new(ServiceTokenClient::new(
                ac_base_url,
                client_id,
                client_secret,
                None,
            )?),
        })
    }
}
