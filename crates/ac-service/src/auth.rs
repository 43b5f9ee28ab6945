//! Who is calling: the bearer-token extractors of the protected routes, built on the
//! extractor every service uses (`common::auth`), with AC's own key store as the verifier.
//!
//! Handlers take these extractors before the body, and the ones that carry a right
//! ([`AdminService`], [`MeetingTokenRequester`]) check it while extracting. axum runs
//! extractors in order, so a caller without the right gets 401 or 403 without the body being
//! read: a malformed body never tells an unauthorized caller anything about the route.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use common::auth::{AuthState, Authenticated, authenticate};
use common::jwt::{ServiceClaims, UserClaims, scope};

use crate::error::AcError;
use crate::keys::KeyStore;
use crate::state::AppState;

impl AuthState for AppState {
    type Verifier = KeyStore;

    fn token_verifier(&self) -> &KeyStore {
        &self.keys
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
        if let Ok(claims) = authenticate::<ServiceClaims, _>(&parts.headers, &state.keys).await {
            return Ok(Caller::Service(claims));
        }
        let claims = authenticate::<UserClaims, _>(&parts.headers, &state.keys).await?;
        Ok(Caller::User(claims))
    }
}

/// The message of a 403 for a service token without the scope the route needs.
pub const MISSING_SCOPE: &str = "the token lacks the required scope";

/// Refuses service tokens that lack `scope` (403: the caller is known, just not allowed).
pub fn require_scope(claims: &ServiceClaims, scope: &str) -> Result<(), AcError> {
    if claims.has_scope(scope) {
        Ok(())
    } else {
        Err(AcError::Forbidden(MISSING_SCOPE))
    }
}

/// The message of a 403 for a user token on a route for admin services.
pub const NOT_AN_ADMIN_SERVICE: &str = "this route needs an admin service token";

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
            Caller::User(_) => Err(AcError::Forbidden(NOT_AN_ADMIN_SERVICE)),
        }
    }
}

/// A verified service token with the `internal:meeting-token` scope (GC). A user token is not
/// a caller of this internal route at all (401).
pub struct MeetingTokenRequester(pub ServiceClaims);

impl FromRequestParts<AppState> for MeetingTokenRequester {
    type Rejection = AcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AcError> {
        let Authenticated(claims) =
            Authenticated::<ServiceClaims>::from_request_parts(parts, state).await?;
        require_scope(&claims, scope::INTERNAL_MEETING_TOKEN)?;
        Ok(MeetingTokenRequester(claims))
    }
}
