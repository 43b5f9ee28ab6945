//! Who is calling: the bearer-token extractors of the protected routes.
//!
//! Tokens are verified by [`KeyStore::verify`](crate::keys::KeyStore::verify) with the checks
//! every Convene service applies (algorithm, signature, `exp`, `iat`, `iss`, `aud`,
//! `token_type`); a token of one kind never passes as another.
//!
//! Handlers take these extractors before the body, and the ones that carry a right
//! ([`AdminService`], [`MeetingTokenRequester`]) check it while extracting. axum runs
//! extractors in order, so a caller without the right gets 401 or 403 without the body being
//! read: a malformed body never tells an unauthorized caller anything about the route.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use common::jwt::{ServiceClaims, UserClaims, scope};

use crate::error::AcError;
use crate::startup::AppState;

/// A verified service token.
pub struct ServiceCaller(pub ServiceClaims);

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AcError> {
        let token = common::http::bearer_token(&parts.headers).ok_or(AcError::Unauthorized)?;
        match state.keys.verify::<ServiceClaims>(token).await {
            Ok(claims) => Ok(ServiceCaller(claims)),
            Err(error) => {
                tracing::debug!(reason = error.kind(), "service token refused");
                Err(AcError::Unauthorized)
            }
        }
    }
}

/// A verified service token or user token, for the routes both may call.
pub enum Caller {
    Service(ServiceClaims),
    User(UserClaims),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AcError> {
        let token = common::http::bearer_token(&parts.headers).ok_or(AcError::Unauthorized)?;
        if let Ok(claims) = state.keys.verify::<ServiceClaims>(token).await {
            return Ok(Caller::Service(claims));
        }
        match state.keys.verify::<UserClaims>(token).await {
            Ok(claims) => Ok(Caller::User(claims)),
            Err(error) => {
                tracing::debug!(reason = error.kind(), "bearer token refused");
                Err(AcError::Unauthorized)
            }
        }
    }
}

/// Refuses service tokens that lack `scope` (403: the caller is known, just not allowed).
pub fn require_scope(claims: &ServiceClaims, scope: &str) -> Result<(), AcError> {
    if claims.has_scope(scope) {
        Ok(())
    } else {
        Err(AcError::Forbidden("the token lacks the required scope"))
    }
}

/// A verified service token with the `admin` scope: the caller of the admin routes. A user
/// token, whatever its roles, is a known caller without that right (403).
pub struct AdminService(pub ServiceClaims);

impl FromRequestParts<AppState> for AdminService {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AcError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Service(claims) => {
                require_scope(&claims, scope::ADMIN)?;
                Ok(AdminService(claims))
            }
            Caller::User(_) => Err(AcError::Forbidden(
                "this route needs an admin service token",
            )),
        }
    }
}

/// A verified service token with the `internal:meeting-token` scope (GC). A user token is not
/// a caller of this internal route at all (401).
pub struct MeetingTokenRequester(pub ServiceClaims);

impl FromRequestParts<AppState> for MeetingTokenRequester {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AcError> {
        let ServiceCaller(claims) = ServiceCaller::from_request_parts(parts, state).await?;
        require_scope(&claims, scope::INTERNAL_MEETING_TOKEN)?;
        Ok(MeetingTokenRequester(claims))
    }
}
