//! How an HTTP handler learns who calls it: the [`Authenticated`] extractor, the same in every
//! service, so the caller is visible in the handler's signature
//! (`Authenticated(claims): Authenticated<UserClaims>`).
//!
//! The extractor reads `Authorization: Bearer <token>` and verifies it as the claim type asked
//! for, which checks signature, algorithm, expiry, issuer, audience and token type: a token of
//! another kind fails like a forged one. Every refusal is a 401 envelope with
//! `WWW-Authenticate` (the reason goes to the log, never to the caller), except two: a request
//! with two `Authorization` headers is a 400, and a verifier that has no signing keys at all
//! answers 503, because the caller did nothing wrong.
//!
//! Services differ only in where their keys come from: GC and MC fetch AC's JWKS
//! ([`JwksVerifier`]); AC reads its own key store. Both implement [`VerifyToken`].

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::jwks::{JwksVerifier, VerifyError};
use crate::jwt::TokenClaims;

/// Something that verifies Convene tokens.
pub trait VerifyToken: Send + Sync {
    fn verify_token<C: TokenClaims + Send>(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<C, VerifyError>> + Send;
}

impl VerifyToken for JwksVerifier {
    async fn verify_token<C: TokenClaims + Send>(&self, token: &str) -> Result<C, VerifyError> {
        self.verify(token).await
    }
}

/// An application state whose handlers take [`Authenticated`] callers.
pub trait AuthState: Send + Sync {
    type Verifier: VerifyToken;
    fn token_verifier(&self) -> &Self::Verifier;
}

/// A caller whose bearer token verified as a `C` token.
#[derive(Clone, Debug)]
pub struct Authenticated<C>(pub C);

impl<S, C> FromRequestParts<S> for Authenticated<C>
where
    S: AuthState,
    C: TokenClaims + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        authenticate(&parts.headers, state.token_verifier())
            .await
            .map(Authenticated)
    }
}

/// Verifies the request's bearer token as a `C` token (see the module documentation for the
/// answers). For extractors that accept more than one kind of token.
pub async fn authenticate<C, V>(headers: &HeaderMap, verifier: &V) -> Result<C, ApiError>
where
    C: TokenClaims + Send,
    V: VerifyToken + ?Sized,
{
    if headers.get_all(AUTHORIZATION).iter().nth(1).is_some() {
        return Err(ApiError::bad_request(
            "the authorization header must appear at most once",
        ));
    }
    let token_type = C::TOKEN_TYPE.as_str();
    let Some(token) = crate::http::bearer_token(headers) else {
        tracing::warn!(token_type, reason = "missing", "bearer token refused");
        return Err(ApiError::unauthorized());
    };
    match verifier.verify_token::<C>(token).await {
        Ok(claims) => Ok(claims),
        Err(VerifyError::KeysUnavailable) => {
            tracing::warn!(token_type, "no signing keys to verify a bearer token");
            Err(ApiError::unavailable())
        }
        // A token of another kind is a client's mix-up (and AC's routes that take two kinds try
        // one, then the other); anything else may be an attack and is worth a warning.
        Err(error @ (VerifyError::WrongAudience | VerifyError::WrongTokenType)) => {
            tracing::debug!(token_type, reason = error.kind(), "bearer token refused");
            Err(ApiError::unauthorized())
        }
        // Every token of a signer whose clock runs ahead fails so: say where to look.
        Err(error @ VerifyError::IssuedInFuture) => {
            tracing::warn!(
                token_type,
                reason = error.kind(),
                "bearer token refused: issued in the future beyond the allowed clock skew (is the signer's clock, or ours, off?)"
            );
            Err(ApiError::unauthorized())
        }
        Err(error) => {
            tracing::warn!(token_type, reason = error.kind(), "bearer token refused");
            Err(ApiError::unauthorized())
        }
    }
}
