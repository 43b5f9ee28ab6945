//! Authentication and authorization of the public REST API.
//!
//! [`require_user_auth`] admits only user tokens: it verifies the bearer token against AC's JWKS
//! as a [`UserClaims`] token, so service and meeting tokens fail on their audience and type and
//! get the same 401 as a missing or forged token (the reason goes to the log, never to the
//! caller). Role checks are per endpoint ([`require_meeting_creator`]) because reading history
//! needs no role while creating a meeting does.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use common::jwks::VerifyError;
use common::jwt::{Role, UserClaims};

use crate::error::{Error, forbidden};
use crate::startup::AppState;

/// Roles that may create meetings.
pub const MEETING_CREATOR_ROLES: [Role; 3] = [Role::User, Role::OrgAdmin, Role::Admin];

/// Verifies the bearer user token and hands its claims to the handler.
pub async fn require_user_auth(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, Error> {
    let Some(token) = common::http::bearer_token(req.headers()) else {
        tracing::warn!(reason = "missing", "user token refused");
        return Err(Error::Unauthorized);
    };
    let claims = match state.verifier.verify::<UserClaims>(token).await {
        Ok(claims) => claims,
        Err(VerifyError::KeysUnavailable) => return Err(Error::KeysUnavailable),
        Err(error) => {
            tracing::warn!(reason = error.kind(), "user token refused");
            return Err(Error::Unauthorized);
        }
    };
    let span = tracing::Span::current();
    span.record("user_id", tracing::field::display(claims.sub));
    span.record("org_id", tracing::field::display(claims.org_id));
    req.extensions_mut().insert(claims);
    Ok(next.run(req).await)
}

/// Refuses (403) a user without one of [`MEETING_CREATOR_ROLES`]. Runs after
/// [`require_user_auth`] and before the body is read, so a user without the role learns nothing
/// about what a valid body looks like.
pub async fn require_meeting_creator(req: Request, next: Next) -> Result<Response, Error> {
    let allowed = req
        .extensions()
        .get::<UserClaims>()
        .is_some_and(|claims| claims.has_any_role(&MEETING_CREATOR_ROLES));
    if !allowed {
        return Err(Error::Forbidden(forbidden::MISSING_ROLE.into()));
    }
    Ok(next.run(req).await)
}

/// The verified caller of a route behind [`require_user_auth`].
#[derive(Clone, Debug)]
pub struct AuthenticatedUser(pub UserClaims);

impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Absent only if a route forgot the layer: refuse rather than serve anonymously.
        parts
            .extensions
            .get::<UserClaims>()
            .cloned()
            .map(AuthenticatedUser)
            .ok_or(Error::Unauthorized)
    }
}
