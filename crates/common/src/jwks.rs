//! Token verification against AC's published keys.
//!
//! [`JwksVerifier`] fetches `/.well-known/jwks.json`, caches the Ed25519 keys by `kid`, and
//! refetches when the cache is stale or a token names a `kid` it has not seen — at most once per
//! `min_refetch_interval`, so a flood of tokens with made-up `kid`s cannot turn into a flood of
//! requests to AC. Every check DESIGN §2 asks for happens here, in this order, cheapest first:
//! size, header and algorithm, key, signature, `exp`/`iss`/`aud`, `iat`, `token_type`.
//!
//! A service sees the same token many times (GC's service token on every call it makes to MC
//! and AC, a user's token on each of their requests), and the Ed25519 check is most of a
//! verification's cost. So the verifier remembers the tokens that passed (at most
//! [`VERIFIED_TOKENS_CACHED`], by the SHA-256 of their bytes and the claim type they passed as)
//! and answers the same bytes again from memory. What can change for the same bytes is checked
//! on every call all the same: that their `kid` is still published, and their expiry. The
//! memory is emptied whenever the key set changes, so a withdrawn key stops verifying exactly
//! when it would without it.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, errors::ErrorKind};
use tokio::sync::{Mutex, RwLock};
use tokio_util::task::TaskTracker;

use crate::jwt::{ALGORITHM, MAX_TOKEN_BYTES, TokenClaims};

/// Why a token was refused. Every variant means 401 to a client; the variant is for logs and
/// metrics (see [`VerifyError::kind`]) and must never be shown to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("token exceeds {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not EdDSA")]
    UnsupportedAlgorithm,
    #[error("token header has no kid")]
    MissingKid,
    #[error("token kid is not a published key")]
    UnknownKid,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token issuer is not trusted")]
    WrongIssuer,
    #[error("token audience is not this service")]
    WrongAudience,
    #[error("token type is not the one expected here")]
    WrongTokenType,
    #[error("token claims are invalid")]
    InvalidClaims,
    #[error("signing keys are unavailable")]
    KeysUnavailable,
}

impl VerifyError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::TooLarge => "too_large",
            VerifyError::Malformed => "malformed",
            VerifyError::UnsupportedAlgorithm => "bad_alg",
            VerifyError::MissingKid => "missing_kid",
            VerifyError::UnknownKid => "unknown_kid",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::Expired => "expired",
            VerifyError::IssuedInFuture => "iat_future",
            VerifyError::WrongIssuer => "wrong_iss",
            VerifyError::WrongAudience => "wrong_aud",
            VerifyError::WrongTokenType => "wrong_type",
            VerifyError::InvalidClaims => "invalid_claims",
            VerifyError::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// Where a remote verifier finds its keys and how it treats time.
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// Full URL of AC's JWKS, e.g. `http://ac:8082/.well-known/jwks.json`.
    pub jwks_url: String,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// Tolerance for `exp` and `iat` between hosts' clocks.
    pub max_clock_skew: Duration,
    /// After this long, the cached key set is refetched before use.
    pub refresh_interval: Duration,
    /// Refetches (for an unknown `kid` or a stale cache) happen at most this often.
    pub min_refetch_interval: Duration,
    /// Timeout of one JWKS request.
    pub http_timeout: Duration,
    /// Where a refresh in the background runs: a service passes its shell's tracker
    /// (`ShellHandle::tracker`), so a stop waits for a refresh a request started. By default a
    /// tracker nobody waits for (tests, tools).
    pub tasks: TaskTracker,
}

impl VerifierConfig {
    /// The defaults every service uses: 60 s skew, refresh every minute, refetch at most every
    /// 10 s. The refresh bounds how long a key AC withdrew (a compromised key) keeps verifying
    /// here: at most `refresh_interval` plus one fetch (`http_timeout`) while AC is reachable.
    pub fn new(ac_base_url: &str, issuer: impl Into<String>) -> Self {
        Self {
            jwks_url: format!(
                "{}/.well-known/jwks.json",
                ac_base_url.trim_end_matches('/')
            ),
            issuer: issuer.into(),
            max_clock_skew: Duration::from_secs(60),
            refresh_interval: Duration::from_secs(60),
            min_refetch_interval: Duration::from_secs(10),
            http_timeout: Duration::from_secs(5),
            tasks: TaskTracker::new(),
        }
    }
}

enum KeySource {
    Remote {
        client: reqwest::Client,
        url: String,
    },
    Fixed,
}

/// How many verified tokens a verifier remembers (their digest and claims, a few hundred bytes
/// each).
pub const VERIFIED_TOKENS_CACHED: usize = 4096;

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// The key set as published, to tell a real change from a refresh that changed nothing.
    published: Option<String>,
    fetched_at: Option<Instant>,
}

/// SHA-256 of a token's bytes.
type TokenDigest = [u8; 32];

/// A token that passed every check as a `C` under the current key set.
struct Verified {
    expires_at: i64,
    claims: Box<dyn Any + Send + Sync>,
}

/// Tokens that verified under the current key set, by digest and by the claim type they
/// verified as.
#[derive(Default)]
struct VerifiedTokens {
    entries: HashMap<(TokenDigest, TypeId), Verified>,
}

impl VerifiedTokens {
    fn get<C: TokenClaims>(&self, digest: &TokenDigest) -> Option<C> {
        self.entries
            .get(&(*digest, TypeId::of::<C>()))
            .and_then(|verified| verified.claims.downcast_ref::<C>())
            .cloned()
    }

    fn insert<C: TokenClaims>(&mut self, digest: TokenDigest, claims: C, now: i64) {
        if self.entries.len() >= VERIFIED_TOKENS_CACHED {
            self.entries.retain(|_, verified| verified.expires_at > now);
            if self.entries.len() >= VERIFIED_TOKENS_CACHED {
                // Still full of live tokens: start again rather than track their use.
                self.entries.clear();
            }
        }
        let verified = Verified {
            expires_at: claims.expires_at(),
            claims: Box::new(claims),
        };
        self.entries.insert((digest, TypeId::of::<C>()), verified);
    }

    fn forget(&mut self, digest: &TokenDigest, type_id: TypeId) {
        self.entries.remove(&(*digest, type_id));
    }
}

fn digest(token: &str) -> TokenDigest {
    let mut out = [0; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

struct Inner {
    source: KeySource,
    issuer: String,
    max_clock_skew: Duration,
    refresh_interval: Duration,
    min_refetch_interval: Duration,
    cache: RwLock<KeyCache>,
    /// Serialises fetches and remembers when the last one was attempted.
    last_fetch_attempt: Mutex<Option<Instant>>,
    /// Set while a background refresh runs, so a busy service starts only one.
    background_refresh: AtomicBool,
    /// Where that refresh runs.
    tasks: TaskTracker,
    verified: SyncMutex<VerifiedTokens>,
    signature_checks: AtomicU64,
}

/// Verifies Convene tokens. Cheap to clone; clones share the key cache.
#[derive(Clone)]
pub struct JwksVerifier {
    inner: Arc<Inner>,
}

impl JwksVerifier {
    /// A verifier that fetches keys from AC.
    pub fn new(config: VerifierConfig) -> Result<Self, reqwest::Error> {
        let client = crate::http_client(config.http_timeout)?;
        Ok(Self::with_source(
            KeySource::Remote {
                client,
                url: config.jwks_url,
            },
            config.issuer,
            config.max_clock_skew,
            config.refresh_interval,
            config.min_refetch_interval,
            config.tasks,
        ))
    }

    /// A verifier over a fixed key set (no network): for tools and for AC verifying its own
    /// tokens from its key store.
    pub fn from_jwks(jwks: &JwkSet, issuer: impl Into<String>, max_clock_skew: Duration) -> Self {
        let verifier = Self::with_source(
            KeySource::Fixed,
            issuer.into(),
            max_clock_skew,
            Duration::MAX,
            Duration::MAX,
            TaskTracker::new(),
        );
        if let Ok(mut cache) = verifier.inner.cache.try_write() {
            verifier.replace_keys(&mut cache, jwks);
        }
        verifier
    }

    fn with_source(
        source: KeySource,
        issuer: String,
        max_clock_skew: Duration,
        refresh_interval: Duration,
        min_refetch_interval: Duration,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                issuer,
                max_clock_skew,
                refresh_interval,
                min_refetch_interval,
                cache: RwLock::new(KeyCache::default()),
                last_fetch_attempt: Mutex::new(None),
                background_refresh: AtomicBool::new(false),
                tasks,
                verified: SyncMutex::new(VerifiedTokens::default()),
                signature_checks: AtomicU64::new(0),
            }),
        }
    }

    /// Replaces a fixed verifier's keys (AC calls this after a rotation).
    pub async fn set_keys(&self, jwks: &JwkSet) {
        let mut cache = self.inner.cache.write().await;
        self.replace_keys(&mut cache, jwks);
    }

    /// Installs a key set. When it differs from the one in use, the memory of checked
    /// signatures is emptied: a token verified under a key that is gone must not pass again.
    fn replace_keys(&self, cache: &mut KeyCache, jwks: &JwkSet) {
        let published = serde_json::to_string(jwks).ok();
        if published.is_none() || published != cache.published {
            cache.keys = decoding_keys(jwks);
            cache.published = published;
            self.verified().entries.clear();
        }
        cache.fetched_at = Some(Instant::now());
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, VerifiedTokens> {
        // Every change to the map is one insert, remove or clear: one poisoned by a panic
        // elsewhere is still consistent.
        self.inner
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many Ed25519 signature checks this verifier has made (tokens it had checked
    /// before are not checked again).
    pub fn signature_checks(&self) -> u64 {
        self.inner.signature_checks.load(Ordering::Relaxed)
    }

    /// How many verified tokens it remembers (at most [`VERIFIED_TOKENS_CACHED`]).
    pub fn verified_tokens_cached(&self) -> usize {
        self.verified().entries.len()
    }

    /// Verifies `token` as a token of kind `C` and returns its claims.
    pub async fn verify<C: TokenClaims>(&self, token: &str) -> Result<C, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::TooLarge);
        }
        let header = decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.alg != ALGORITHM {
            return Err(VerifyError::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(VerifyError::MissingKid)?;
        let key = self.key_for(&kid).await?;

        let skew = self.inner.max_clock_skew.as_secs();
        let digest = digest(token);
        let now = chrono::Utc::now().timestamp();
        let cached = self.verified().get::<C>(&digest);
        if let Some(claims) = cached {
            // These exact bytes passed every check as a `C` under this key set, and their kid
            // is still published (`key_for` answered): only time can have changed the answer.
            if claims.expires_at() < now.saturating_sub(skew as i64) {
                self.verified().forget(&digest, TypeId::of::<C>());
                return Err(VerifyError::Expired);
            }
            return Ok(claims);
        }
        self.inner.signature_checks.fetch_add(1, Ordering::Relaxed);

        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = skew;
        validation.set_issuer(&[self.inner.issuer.as_str()]);
        validation.set_audience(&[C::AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = false;

        let claims = decode::<C>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => VerifyError::BadSignature,
                ErrorKind::ExpiredSignature => VerifyError::Expired,
                ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
                ErrorKind::InvalidAudience => VerifyError::WrongAudience,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    VerifyError::UnsupportedAlgorithm
                }
                ErrorKind::Json(_) | ErrorKind::MissingRequiredClaim(_) => {
                    VerifyError::InvalidClaims
                }
                _ => VerifyError::Malformed,
            })?
            .claims;

        if claims.issued_at() > now.saturating_add(skew as i64) {
            return Err(VerifyError::IssuedInFuture);
        }
        if claims.expires_at() <= claims.issued_at() {
            return Err(VerifyError::InvalidClaims);
        }
        if claims.token_type() != C::TOKEN_TYPE {
            return Err(VerifyError::WrongTokenType);
        }
        self.verified().insert(digest, claims.clone(), now);
        Ok(claims)
    }

    /// Fetches the key set now if this verifier has none yet or it is stale. Readiness probes
    /// call it; it returns whether keys are available.
    pub async fn ensure_keys(&self) -> bool {
        if self.needs_refresh().await {
            self.refetch().await;
        }
        !self.inner.cache.read().await.keys.is_empty()
    }

    async fn needs_refresh(&self) -> bool {
        let cache = self.inner.cache.read().await;
        match cache.fetched_at {
            None => true,
            Some(at) => at.elapsed() >= self.inner.refresh_interval,
        }
    }

    async fn key_for(&self, kid: &str) -> Result<DecodingKey, VerifyError> {
        {
            let cache = self.inner.cache.read().await;
            if let Some(key) = cache.keys.get(kid) {
                let stale = cache
                    .fetched_at
                    .is_none_or(|at| at.elapsed() >= self.inner.refresh_interval);
                if stale
                    && self
                        .inner
                        .background_refresh
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    // A known key stays good while the set is refreshed in the background:
                    // requests never wait for AC because a minute has passed.
                    let verifier = self.clone();
                    self.inner.tasks.spawn(async move {
                        verifier.refetch().await;
                        verifier
                            .inner
                            .background_refresh
                            .store(false, Ordering::Release);
                    });
                }
                return Ok(key.clone());
            }
        }
        // Unknown kid (a new key, or none fetched yet): one rate-limited refetch, then decide.
        self.refetch().await;
        let cache = self.inner.cache.read().await;
        if let Some(key) = cache.keys.get(kid) {
            return Ok(key.clone());
        }
        if cache.keys.is_empty() {
            Err(VerifyError::KeysUnavailable)
        } else {
            Err(VerifyError::UnknownKid)
        }
    }

    /// Fetches the key set unless a fetch happened within `min_refetch_interval`. Concurrent
    /// callers wait for the one fetch in flight instead of starting their own.
    async fn refetch(&self) {
        let KeySource::Remote { client, url } = &self.inner.source else {
            return;
        };
        let mut last = self.inner.last_fetch_attempt.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.inner.min_refetch_interval) {
            return;
        }
        *last = Some(Instant::now());
        match fetch_jwks(client, url).await {
            Ok(jwks) => {
                let mut cache = self.inner.cache.write().await;
                self.replace_keys(&mut cache, &jwks);
                tracing::debug!(keys = cache.keys.len(), "jwks refreshed");
            }
            Err(error) => {
                // Keep serving with the keys we have: a brief AC outage must not reject
                // tokens signed by keys we already know.
                tracing::warn!(%error, "jwks fetch failed");
            }
        }
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<JwkSet, reqwest::Error> {
    client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

/// Keeps only Ed25519 signing keys with a `kid`; anything else in the set is ignored.
fn decoding_keys(jwks: &JwkSet) -> HashMap<String, DecodingKey> {
    jwks.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
                return None;
            };
            if params.curve != EllipticCurve::Ed25519 {
                return None;
            }
            if jwk
                .common
                .key_algorithm
                .is_some_and(|alg| alg != KeyAlgorithm::EdDSA)
            {
                return None;
            }
            DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
        })
        .collect()
}
